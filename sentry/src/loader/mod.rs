//! ELF loading and the initial process stack (compare Linux
//! fs/binfmt_elf.c `load_elf_binary`, fs/exec.c).
//!
//! How the kernel's `execve` uses it:
//! 1. open the file; if [`parse_shebang`] recognises a `#!` line, execute
//!    the interpreter with the returned argv instead (recursing at most 4
//!    levels, Linux `BINPRM_MAX_RECURSION`);
//! 2. create a *new* `MemoryManager` (and an empty address space for the
//!    stub) and call [`load`] into it; on error discard both and return
//!    the errno to the caller (nothing of the old image was touched);
//! 3. on success swap the new address space in, set `rip = entry`,
//!    `rsp = stack_pointer`, all other registers zero (Linux
//!    `start_thread`), and keep [`LoadedImage`] for `/proc`.
//!
//! Layout (no randomisation): `ET_EXEC` at its link addresses; `ET_DYN`
//! programs (PIE, static-PIE) at `ELF_ET_DYN_BASE` (2/3 of the address
//! space); the interpreter wherever `mmap` puts it (top-down below the
//! mmap base); the heap right after the program's highest segment; the
//! stack (`[stack]`, sized by RLIMIT_STACK) ending one page below the
//! platform's highest user address. There is no vDSO: no
//! `AT_SYSINFO_EHDR`, so libc issues real `clock_gettime` etc. syscalls.

pub mod aux;
mod elf;
mod script;
mod stack;

#[cfg(test)]
mod tests;

pub use elf::{ElfInfo, Phdr};
pub use script::{parse_shebang, Shebang, BINPRM_BUF_SIZE};
pub use stack::{StackLayout, MAX_ARG_STRLEN};

use aux::*;
use elf::{PF_R, PF_W, PF_X, PHDR_SIZE};

use crate::errno::{Errno, SysResult};
use crate::mm::{MemoryManager, MmapFile, MmapRequest, VmaName, PAGE_SIZE};
use crate::platform::{Context, Prot};
use crate::vfs::MappedFile;

/// Default and bounds of the stack VMA size (RLIMIT_STACK).
pub const DEFAULT_STACK_SIZE: u64 = 8 << 20;
const MIN_STACK_SIZE: u64 = 128 << 10;
/// Kept below the mmap-base gap so the stack never meets mmap space.
const MAX_STACK_SIZE: u64 = crate::mm::MMAP_BASE_GAP / 2;

/// Per-exec inputs of the auxiliary vector and the stack.
#[derive(Clone, Debug)]
pub struct ExecParams<'a> {
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    /// The path passed to execve (AT_EXECFN).
    pub execfn: &'a [u8],
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// AT_SECURE (setuid-like exec).
    pub secure: bool,
    /// The 16 AT_RANDOM bytes (from the kernel's RNG).
    pub random: [u8; 16],
    /// AT_HWCAP: CPUID leaf 1 EDX on x86 (the caller reads the host's).
    pub hwcap: u64,
    /// AT_HWCAP2.
    pub hwcap2: u64,
    /// AT_PLATFORM string, "x86_64".
    pub platform: &'a [u8],
    /// AT_MINSIGSTKSZ: the signal frame size the kernel's signal delivery
    /// uses (depends on the XSAVE size).
    pub minsigstksz: u64,
    /// RLIMIT_STACK soft limit: the stack VMA size (clamped to
    /// 128 KiB..64 MiB).
    pub stack_size: u64,
}

impl<'a> ExecParams<'a> {
    /// Root credentials, no hwcaps, zero random bytes, default stack: a
    /// starting point the kernel overrides field by field.
    pub fn new(argv: &'a [Vec<u8>], envp: &'a [Vec<u8>], execfn: &'a [u8]) -> ExecParams<'a> {
        ExecParams {
            argv,
            envp,
            execfn,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            secure: false,
            random: [0; 16],
            hwcap: 0,
            hwcap2: 0,
            platform: b"x86_64",
            minsigstksz: 2048,
            stack_size: DEFAULT_STACK_SIZE,
        }
    }
}

/// The result of a successful load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Initial `rip`: the interpreter's entry if there is one, else the
    /// program's.
    pub entry: u64,
    /// Initial `rsp`.
    pub stack_pointer: u64,
    /// The program's own entry (AT_ENTRY).
    pub program_entry: u64,
    /// Load bias of the program (0 for ET_EXEC).
    pub load_bias: u64,
    /// Load bias of the interpreter (AT_BASE), 0 without one.
    pub interp_base: u64,
    /// AT_PHDR / AT_PHNUM.
    pub phdr: u64,
    pub phnum: u64,
    /// Start of the heap (the program break starts here).
    pub start_brk: u64,
    /// The stack VMA `[stack_bottom, stack_top)`.
    pub stack_top: u64,
    pub stack_bottom: u64,
    /// The interpreter path from PT_INTERP.
    pub interp: Option<Vec<u8>>,
    /// Where argv/envp/auxv went.
    pub layout: StackLayout,
}

fn prot_of(flags: u32) -> Prot {
    Prot {
        read: flags & PF_R != 0,
        write: flags & PF_W != 0,
        exec: flags & PF_X != 0,
    }
}

fn page_up(a: u64) -> SysResult<u64> {
    a.checked_add(PAGE_SIZE - 1)
        .map(|v| v & !(PAGE_SIZE - 1))
        .ok_or(Errno::ENOEXEC.because("segment end overflows"))
}

/// Loads `exe` (and its interpreter, opened through `open_interp` with
/// the PT_INTERP path) into `mm`, which must be a fresh, empty address
/// space, and builds the initial stack. See the module docs for the
/// layout and how `execve` uses it.
///
/// Errors: `ENOEXEC` for anything malformed (headers, segments out of
/// bounds, bad interpreter), `E2BIG` for oversized argv/envp, the
/// errors of `open_interp`, `ENOMEM` when memory runs out.
pub fn load(
    ctx: &mut dyn Context,
    mm: &mut MemoryManager,
    exe: &MappedFile,
    open_interp: &mut dyn FnMut(&[u8]) -> SysResult<MappedFile>,
    params: &ExecParams<'_>,
) -> SysResult<LoadedImage> {
    let info = ElfInfo::parse(exe, PAGE_SIZE)?;
    let interp = match &info.interp {
        Some(path) => {
            let f = open_interp(path)?;
            let i = ElfInfo::parse(&f, PAGE_SIZE)?;
            Some((f, i))
        }
        None => None,
    };

    let (lo, _) = info.span(PAGE_SIZE);
    let load_bias = if info.e_type == elf::ET_DYN {
        let base = (mm.max_address() / 3 * 2) & !(PAGE_SIZE - 1);
        base.checked_sub(lo)
            .ok_or(Errno::ENOEXEC.because("ET_DYN segments start too high"))?
    } else {
        0
    };
    let end = map_segments(ctx, mm, exe, &info, load_bias)?;
    mm.set_brk_start(end);

    let (entry, interp_base) = match &interp {
        Some((f, i)) => {
            let (ilo, ihi) = i.span(PAGE_SIZE);
            let ibias = if i.e_type == elf::ET_DYN {
                // Reserve the interpreter's whole span where mmap chooses,
                // then map its segments at fixed offsets inside it.
                let mut req = MmapRequest::anonymous(ihi - ilo);
                req.prot = 0;
                let at = mm.mmap(ctx, req)?;
                mm.munmap(ctx, at, ihi - ilo)?;
                at - ilo
            } else {
                0
            };
            map_segments(ctx, mm, f, i, ibias)?;
            (i.entry.wrapping_add(ibias), ibias)
        }
        None => (info.entry.wrapping_add(load_bias), 0),
    };

    let stack_size = (params.stack_size.clamp(MIN_STACK_SIZE, MAX_STACK_SIZE) + PAGE_SIZE - 1)
        & !(PAGE_SIZE - 1);
    let stack_top = (mm.max_address() & !(PAGE_SIZE - 1))
        .checked_sub(PAGE_SIZE)
        .ok_or(Errno::ENOMEM.because("no room for the stack"))?;
    let stack_bottom = stack_top
        .checked_sub(stack_size)
        .ok_or(Errno::ENOMEM.because("no room for the stack"))?;
    let mut stack_prot = Prot::RW;
    stack_prot.exec = info.exec_stack;
    mm.map_anonymous_fixed(
        ctx,
        stack_bottom,
        stack_top,
        stack_prot,
        VmaName::Stack,
        true,
    )?;

    let phdr = info
        .phdr_vaddr()
        .ok_or(Errno::ENOEXEC.because("program headers are not loaded by any segment"))?
        .wrapping_add(load_bias);
    let program_entry = info.entry.wrapping_add(load_bias);
    let auxv = vec![
        (AT_MINSIGSTKSZ, params.minsigstksz),
        (AT_HWCAP, params.hwcap),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, 100),
        (AT_PHDR, phdr),
        (AT_PHENT, PHDR_SIZE as u64),
        (AT_PHNUM, info.phnum as u64),
        (AT_BASE, interp_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, program_entry),
        (AT_UID, params.uid as u64),
        (AT_EUID, params.euid as u64),
        (AT_GID, params.gid as u64),
        (AT_EGID, params.egid as u64),
        (AT_SECURE, params.secure as u64),
        (AT_HWCAP2, params.hwcap2),
    ];
    let layout = stack::build(
        ctx,
        mm,
        stack_top,
        stack_bottom,
        stack::StackContents {
            argv: params.argv,
            envp: params.envp,
            execfn: params.execfn,
            platform: params.platform,
            random: params.random,
            auxv,
        },
    )?;

    Ok(LoadedImage {
        entry,
        stack_pointer: layout.sp,
        program_entry,
        load_bias,
        interp_base,
        phdr,
        phnum: info.phnum as u64,
        start_brk: mm.current_brk(),
        stack_top,
        stack_bottom,
        interp: info.interp.clone(),
        layout,
    })
}

/// Maps the PT_LOAD segments of `file` at `bias`; returns the end of the
/// highest segment (where the heap starts).
fn map_segments(
    ctx: &mut dyn Context,
    mm: &mut MemoryManager,
    file: &MappedFile,
    info: &ElfInfo,
    bias: u64,
) -> SysResult<u64> {
    let mut highest = 0;
    for ph in info.loads() {
        let prot = prot_of(ph.p_flags);
        let start = bias
            .checked_add(ph.p_vaddr)
            .ok_or(Errno::ENOEXEC.because("segment address overflows"))?;
        let page_start = start & !(PAGE_SIZE - 1);
        let in_page = start - page_start;
        let file_end = start + ph.p_filesz;
        let mem_end = start + ph.p_memsz;
        if ph.p_filesz > 0 {
            mm.mmap(
                ctx,
                MmapRequest {
                    addr: page_start,
                    len: in_page + ph.p_filesz,
                    prot: prot.bits(),
                    flags: (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64,
                    file: Some(MmapFile {
                        file: file.clone(),
                        readable: true,
                        writable: false,
                    }),
                    offset: ph.p_offset - in_page,
                },
            )
            .map_err(segment_error)?;
        }
        if ph.p_memsz > ph.p_filesz {
            // Linux `padzero`: the rest of the last file page is bss.
            let file_page_end = page_up(file_end)?;
            if ph.p_filesz > 0 && file_page_end > file_end {
                let zeros = vec![0u8; (file_page_end - file_end) as usize];
                mm.copy_out_force(ctx, file_end, &zeros)?;
            }
            let anon_start = if ph.p_filesz > 0 {
                file_page_end
            } else {
                page_start
            };
            let anon_end = page_up(mem_end)?;
            if anon_end > anon_start {
                mm.map_anonymous_fixed(ctx, anon_start, anon_end, prot, VmaName::None, false)
                    .map_err(segment_error)?;
            }
        }
        highest = highest.max(mem_end);
    }
    Ok(highest)
}

/// Segment placement failures (outside user space, below mmap_min_addr)
/// mean the binary cannot run here.
fn segment_error(e: Errno) -> Errno {
    match e.code() {
        libc::ENOMEM => e,
        _ => Errno::ENOEXEC.because("PT_LOAD segment cannot be mapped at its address"),
    }
}
