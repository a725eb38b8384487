//! The synthetic `/dev`: memory devices, `/dev/tty`, and the stdio links.
//! Linux: drivers/char/mem.c (null, zero, full), drivers/char/random.c.

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::stat::{dev_make, FileType, Stat};

/// The device number of the synthetic devfs (an anonymous device).
pub const DEVFS_DEV: u64 = 0x2c;

/// Inode number of `/dev/shm` (an overlay directory with devfs identity).
pub const DEV_SHM_INO: u64 = 40;

/// A character device the sentry implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum DevKind {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
    /// The host's controlling terminal, passed through.
    Tty,
}

/// A node of `/dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum DevNode {
    /// `/dev` itself.
    Root,
    Device(DevKind),
    /// `/dev/stdin` etc.: symlinks into `/proc/self/fd`.
    Link(DevLink),
}

/// The symlinks of `/dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum DevLink {
    Stdin,
    Stdout,
    Stderr,
    Fd,
}

const DEVICES: [(&[u8], DevKind); 6] = [
    (b"null", DevKind::Null),
    (b"zero", DevKind::Zero),
    (b"full", DevKind::Full),
    (b"random", DevKind::Random),
    (b"urandom", DevKind::Urandom),
    (b"tty", DevKind::Tty),
];

const LINKS: [(&[u8], DevLink); 4] = [
    (b"stdin", DevLink::Stdin),
    (b"stdout", DevLink::Stdout),
    (b"stderr", DevLink::Stderr),
    (b"fd", DevLink::Fd),
];

impl DevKind {
    /// The (major, minor) Linux gives this device.
    pub fn numbers(self) -> (u32, u32) {
        match self {
            DevKind::Null => (1, 3),
            DevKind::Zero => (1, 5),
            DevKind::Full => (1, 7),
            DevKind::Random => (1, 8),
            DevKind::Urandom => (1, 9),
            DevKind::Tty => (5, 0),
        }
    }

    /// The device's name under `/dev`.
    pub fn name(self) -> &'static str {
        match self {
            DevKind::Null => "null",
            DevKind::Zero => "zero",
            DevKind::Full => "full",
            DevKind::Random => "random",
            DevKind::Urandom => "urandom",
            DevKind::Tty => "tty",
        }
    }

    /// `read(2)` of a memory device (not `Tty`, which is a host file).
    pub fn read(self, buf: &mut [u8]) -> SysResult<usize> {
        match self {
            DevKind::Null => Ok(0),
            DevKind::Zero | DevKind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            DevKind::Random | DevKind::Urandom => fill_random(buf),
            DevKind::Tty => Err(Errno::EIO.because("tty is a host file")),
        }
    }

    /// `write(2)` to a memory device.
    pub fn write(self, buf: &[u8]) -> SysResult<usize> {
        match self {
            DevKind::Full => Err(Errno::ENOSPC),
            DevKind::Tty => Err(Errno::EIO.because("tty is a host file")),
            _ => Ok(buf.len()),
        }
    }
}

/// Fills `buf` from the host's `getrandom(2)`.
fn fill_random(buf: &mut [u8]) -> SysResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Err(Errno::EIO.because("host getrandom failed")),
        }
    }
    Ok(done)
}

impl DevNode {
    /// Looks `name` up in `/dev`.
    pub fn lookup(self, name: &[u8]) -> SysResult<DevNode> {
        if self != DevNode::Root {
            return Err(Errno::ENOTDIR);
        }
        if let Some((_, k)) = DEVICES.iter().find(|(n, _)| *n == name) {
            return Ok(DevNode::Device(*k));
        }
        if let Some((_, l)) = LINKS.iter().find(|(n, _)| *n == name) {
            return Ok(DevNode::Link(*l));
        }
        Err(Errno::ENOENT)
    }

    /// The entries of `/dev` as (name, ino, type).
    pub fn list() -> Vec<(Vec<u8>, u64, FileType)> {
        let devs = DEVICES
            .iter()
            .map(|(n, k)| (n.to_vec(), DevNode::Device(*k).ino(), FileType::CharDevice));
        let links = LINKS
            .iter()
            .map(|(n, l)| (n.to_vec(), DevNode::Link(*l).ino(), FileType::Symlink));
        let shm = std::iter::once((b"shm".to_vec(), DEV_SHM_INO, FileType::Directory));
        devs.chain(links).chain(shm).collect()
    }

    /// The node's synthetic inode number.
    pub fn ino(self) -> u64 {
        match self {
            DevNode::Root => 1,
            DevNode::Device(k) => 2 + k as u64,
            DevNode::Link(l) => 32 + l as u64,
        }
    }

    /// The symlink target, for links.
    pub fn readlink(self) -> SysResult<Vec<u8>> {
        match self {
            DevNode::Link(DevLink::Stdin) => Ok(b"/proc/self/fd/0".to_vec()),
            DevNode::Link(DevLink::Stdout) => Ok(b"/proc/self/fd/1".to_vec()),
            DevNode::Link(DevLink::Stderr) => Ok(b"/proc/self/fd/2".to_vec()),
            DevNode::Link(DevLink::Fd) => Ok(b"/proc/self/fd".to_vec()),
            _ => Err(Errno::EINVAL.because("not a symlink")),
        }
    }

    /// The node's file type.
    pub fn file_type(self) -> FileType {
        match self {
            DevNode::Root => FileType::Directory,
            DevNode::Device(_) => FileType::CharDevice,
            DevNode::Link(_) => FileType::Symlink,
        }
    }

    /// `stat(2)` of the node.
    pub fn stat(self) -> Stat {
        let (mode, rdev, nlink, size) = match self {
            DevNode::Root => (libc::S_IFDIR | 0o755, 0, 2, 4096),
            DevNode::Device(DevKind::Tty) => (libc::S_IFCHR | 0o666, dev_make(5, 0), 1, 0),
            DevNode::Device(k) => {
                let (ma, mi) = k.numbers();
                (libc::S_IFCHR | 0o666, dev_make(ma, mi), 1, 0)
            }
            DevNode::Link(_) => {
                let len = self.readlink().map_or(0, |t| t.len() as i64);
                (libc::S_IFLNK | 0o777, 0, 1, len)
            }
        };
        Stat {
            dev: DEVFS_DEV,
            ino: self.ino(),
            nlink,
            mode,
            rdev,
            size,
            blksize: 4096,
            ..Stat::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_devices_behave_like_linux() {
        let mut buf = [7u8; 16];
        assert_eq!(DevKind::Null.read(&mut buf).unwrap(), 0);
        assert_eq!(DevKind::Null.write(b"abc").unwrap(), 3);
        assert_eq!(DevKind::Zero.read(&mut buf).unwrap(), 16);
        assert_eq!(buf, [0u8; 16]);
        assert_eq!(DevKind::Full.write(b"x").unwrap_err(), Errno::ENOSPC);
    }

    #[test]
    fn urandom_reads_are_filled_and_differ() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(DevKind::Urandom.read(&mut a).unwrap(), 32);
        DevKind::Urandom.read(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn null_has_linux_device_numbers() {
        let st = DevNode::Root.lookup(b"null").unwrap().stat();
        assert_eq!(st.rdev, dev_make(1, 3));
        assert_eq!(st.mode & libc::S_IFMT, libc::S_IFCHR);
    }
}
