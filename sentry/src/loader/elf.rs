//! ELF64 x86-64 header and program-header parsing, with every bound
//! checked: a malformed file is `ENOEXEC`, never a panic (compare Linux
//! fs/binfmt_elf.c `load_elf_binary`, `load_elf_phdrs`, `elf_check_arch`).

use crate::errno::{Errno, SysResult};
use crate::vfs::MappedFile;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Size of `Elf64_Ehdr`.
const EHDR_SIZE: usize = 64;
/// Size of `Elf64_Phdr`.
pub const PHDR_SIZE: usize = 56;
/// Linux refuses program-header tables larger than a page
/// (`load_elf_phdrs`: `size > ELF_MIN_ALIGN`).
const MAX_PHDR_BYTES: usize = 4096;
/// Longest `PT_INTERP` path accepted (`PATH_MAX`).
const MAX_INTERP_LEN: u64 = 4096;

fn noexec(why: &'static str) -> Errno {
    Errno::ENOEXEC.because(why)
}

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// What the loader needs from an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub e_type: u16,
    pub entry: u64,
    pub phoff: u64,
    pub phnum: u16,
    pub phdrs: Vec<Phdr>,
    /// The `PT_INTERP` path without its NUL.
    pub interp: Option<Vec<u8>>,
    /// `PT_GNU_STACK` asks for an executable stack.
    pub exec_stack: bool,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Reads exactly `buf.len()` bytes at `off` or fails with `ENOEXEC`.
fn read_exact(file: &MappedFile, off: u64, buf: &mut [u8]) -> SysResult<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(off + done as u64, &mut buf[done..])?;
        if n == 0 {
            return Err(noexec("ELF file is truncated"));
        }
        done += n;
    }
    Ok(())
}

impl ElfInfo {
    /// Parses and validates the ELF headers of `file`, whose size is
    /// `size` bytes. `page` is the page size (segment congruence).
    pub fn parse(file: &MappedFile, page: u64) -> SysResult<ElfInfo> {
        let size = file.size()?;
        let mut eh = [0u8; EHDR_SIZE];
        if size < EHDR_SIZE as u64 {
            return Err(noexec("file shorter than an ELF header"));
        }
        read_exact(file, 0, &mut eh)?;
        if &eh[..4] != b"\x7fELF" {
            return Err(noexec("no ELF magic"));
        }
        if eh[4] != 2 || eh[5] != 1 || eh[6] != 1 {
            return Err(noexec("not a little-endian ELF64 version 1 file"));
        }
        let e_type = u16_at(&eh, 16);
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(noexec("ELF type is neither ET_EXEC nor ET_DYN"));
        }
        if u16_at(&eh, 18) != EM_X86_64 {
            return Err(noexec("ELF machine is not x86-64"));
        }
        let entry = u64_at(&eh, 24);
        let phoff = u64_at(&eh, 32);
        let phentsize = u16_at(&eh, 54) as usize;
        let phnum = u16_at(&eh, 56);
        if phentsize != PHDR_SIZE {
            return Err(noexec("unexpected e_phentsize"));
        }
        let table = phnum as usize * PHDR_SIZE;
        if phnum == 0 || table > MAX_PHDR_BYTES {
            return Err(noexec("bad program header count"));
        }
        if phoff.checked_add(table as u64).is_none_or(|e| e > size) {
            return Err(noexec("program headers lie outside the file"));
        }
        let mut raw = vec![0u8; table];
        read_exact(file, phoff, &mut raw)?;
        let phdrs: Vec<Phdr> = raw
            .chunks_exact(PHDR_SIZE)
            .map(|p| Phdr {
                p_type: u32_at(p, 0),
                p_flags: u32_at(p, 4),
                p_offset: u64_at(p, 8),
                p_vaddr: u64_at(p, 16),
                p_filesz: u64_at(p, 32),
                p_memsz: u64_at(p, 40),
                p_align: u64_at(p, 48),
            })
            .collect();

        let mut interp = None;
        let mut exec_stack = false;
        let mut loads = 0;
        for ph in &phdrs {
            match ph.p_type {
                PT_LOAD => {
                    loads += 1;
                    check_load(ph, size, page)?;
                }
                PT_INTERP => {
                    if interp.is_some() {
                        return Err(noexec("more than one PT_INTERP"));
                    }
                    if ph.p_filesz < 2 || ph.p_filesz > MAX_INTERP_LEN {
                        return Err(noexec("bad PT_INTERP size"));
                    }
                    if ph
                        .p_offset
                        .checked_add(ph.p_filesz)
                        .is_none_or(|e| e > size)
                    {
                        return Err(noexec("PT_INTERP lies outside the file"));
                    }
                    let mut path = vec![0u8; ph.p_filesz as usize];
                    read_exact(file, ph.p_offset, &mut path)?;
                    if path.pop() != Some(0) || path.contains(&0) {
                        return Err(noexec("PT_INTERP is not a NUL-terminated path"));
                    }
                    interp = Some(path);
                }
                PT_GNU_STACK => exec_stack = ph.p_flags & PF_X != 0,
                _ => {}
            }
        }
        if loads == 0 {
            return Err(noexec("no PT_LOAD segment"));
        }
        Ok(ElfInfo {
            e_type,
            entry,
            phoff,
            phnum,
            phdrs,
            interp,
            exec_stack,
        })
    }

    /// The `PT_LOAD` headers.
    pub fn loads(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// `[lowest page, highest page end)` of the loadable segments, before
    /// the load bias.
    pub fn span(&self, page: u64) -> (u64, u64) {
        let lo = self
            .loads()
            .map(|p| p.p_vaddr & !(page - 1))
            .min()
            .unwrap_or(0);
        let hi = self
            .loads()
            .map(|p| (p.p_vaddr + p.p_memsz).div_ceil(page) * page)
            .max()
            .unwrap_or(0);
        (lo, hi)
    }

    /// The unbiased address of the program headers in memory: `PT_PHDR`
    /// if present, else where the segment that contains `e_phoff` loads it
    /// (compare Linux `load_elf_binary`: `phdr_addr`).
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            return Some(p.p_vaddr);
        }
        self.loads()
            .find(|p| p.p_offset <= self.phoff && self.phoff < p.p_offset + p.p_filesz)
            .map(|p| p.p_vaddr + (self.phoff - p.p_offset))
    }
}

/// Bounds of one `PT_LOAD` (Linux would fail the mmap or fault later; we
/// refuse up front).
fn check_load(ph: &Phdr, size: u64, page: u64) -> SysResult<()> {
    if ph.p_filesz > ph.p_memsz {
        return Err(noexec("PT_LOAD p_filesz exceeds p_memsz"));
    }
    if ph
        .p_offset
        .checked_add(ph.p_filesz)
        .is_none_or(|e| e > size)
    {
        return Err(noexec("PT_LOAD file range lies outside the file"));
    }
    if ph.p_vaddr % page != ph.p_offset % page {
        return Err(noexec("PT_LOAD offset and address are not congruent"));
    }
    // Keep every segment inside the 47-bit user range, so biased
    // arithmetic below never overflows.
    if ph
        .p_vaddr
        .checked_add(ph.p_memsz)
        .is_none_or(|e| e > 1 << 47)
    {
        return Err(noexec("PT_LOAD lies outside the user address range"));
    }
    Ok(())
}
