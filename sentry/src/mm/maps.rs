//! `/proc/<pid>/maps` text and memory usage figures (compare Linux
//! fs/proc/task_mmu.c `show_map_vma`, `task_mem`).

use std::fmt::Write;

use super::manager::MemoryManager;
use super::memfile::PAGE_SIZE;
use super::vma::{VmaBacking, VmaName};

/// Memory usage of one address space, in bytes (for
/// `/proc/<pid>/status` and `/proc/<pid>/statm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Total size of all VMAs (`VmSize`).
    pub virtual_size: u64,
    /// Pages backed by memory (`VmRSS`); pages shared copy-on-write with
    /// another process count in both.
    pub resident: u64,
    /// Private writable non-stack VMAs (`VmData`).
    pub data: u64,
    /// Stack VMAs (`VmStk`).
    pub stack: u64,
    /// Executable file VMAs (`VmExe` + `VmLib`).
    pub text: u64,
}

/// Linux `MAJOR(dev)` / `MINOR(dev)` of a userspace `dev_t`.
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

impl MemoryManager {
    /// The text of `/proc/<pid>/maps`, one line per VMA in Linux's format
    /// (`start-end perms offset major:minor inode` padded to column 73,
    /// then the path, `[heap]` or `[stack]`).
    pub fn maps_text(&self) -> String {
        let mut out = String::new();
        for v in self.vmas.values() {
            let perms = format!(
                "{}{}{}{}",
                if v.prot.read { 'r' } else { '-' },
                if v.prot.write { 'w' } else { '-' },
                if v.prot.exec { 'x' } else { '-' },
                if v.shared { 's' } else { 'p' },
            );
            let (off, major, minor, ino, name) = match &v.backing {
                VmaBacking::File { file, offset } => {
                    let (ma, mi) = major_minor(file.dev());
                    (*offset, ma, mi, file.ino(), file.path_name())
                }
                VmaBacking::Anonymous => {
                    let name = match v.name {
                        VmaName::Heap => "[heap]",
                        VmaName::Stack => "[stack]",
                        VmaName::None => "",
                    };
                    (0, 0, 0, 0, name.to_string())
                }
            };
            let mut line = String::new();
            // Writing to a String cannot fail.
            let _ = write!(
                line,
                "{:08x}-{:08x} {perms} {off:08x} {major:02x}:{minor:02x} {ino} ",
                v.start, v.end
            );
            if !name.is_empty() {
                while line.len() < 73 {
                    line.push(' ');
                }
                line.push_str(&name);
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Memory usage figures.
    pub fn usage(&self) -> MemoryUsage {
        let mut u = MemoryUsage {
            resident: self.ptes.len() as u64 * PAGE_SIZE,
            ..MemoryUsage::default()
        };
        for v in self.vmas.values() {
            u.virtual_size += v.len();
            if v.name == VmaName::Stack || v.growsdown {
                u.stack += v.len();
            } else if v.prot.write && !v.shared {
                u.data += v.len();
            } else if v.prot.exec && !v.is_anonymous() {
                u.text += v.len();
            }
        }
        u
    }
}
