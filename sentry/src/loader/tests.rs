//! Loader tests over real ELF files on this machine and hand-made
//! malformed ones; the results are read back from guest memory.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::aux::*;
use super::*;
use crate::mm::testctx::TestCtx;
use crate::mm::{MemoryFile, MemoryManager};

/// A typical x86-64 user address-space top (below the stub's page).
const MAX: u64 = 0x7fff_ffff_f000;

/// (argv, envp, auxv) read back from a stack.
type StackReadback = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<(u64, u64)>);

struct Loaded {
    mm: MemoryManager,
    ctx: TestCtx,
    img: LoadedImage,
    interp_asked: Vec<Vec<u8>>,
}

fn args(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn load_path(path: &Path) -> SysResult<Loaded> {
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    load_file(&mf, &MappedFile::open_host(path).unwrap())
}

fn load_file(mf: &Arc<MemoryFile>, exe: &MappedFile) -> SysResult<Loaded> {
    let mut mm = MemoryManager::new(mf.clone(), MAX);
    let mut ctx = TestCtx::new();
    let argv = args(&["prog", "-x", "arg two"]);
    let envp = args(&["A=1", "PATH=/bin"]);
    let mut p = ExecParams::new(&argv, &envp, b"/usr/bin/prog");
    p.random = *b"0123456789abcdef";
    p.uid = 1000;
    p.egid = 7;
    let mut asked = Vec::new();
    let mut open = |path: &[u8]| {
        asked.push(path.to_vec());
        MappedFile::open_host(Path::new(std::str::from_utf8(path).unwrap()))
            .map_err(|_| Errno::ENOENT)
    };
    let img = load(&mut ctx, &mut mm, exe, &mut open, &p)?;
    Ok(Loaded {
        mm,
        ctx,
        img,
        interp_asked: asked,
    })
}

impl Loaded {
    fn u64_at(&mut self, addr: u64) -> u64 {
        self.mm.read_u64(&mut self.ctx, addr).unwrap()
    }
    fn bytes(&mut self, addr: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.mm.copy_in(&mut self.ctx, addr, &mut b).unwrap();
        b
    }
    fn cstr(&mut self, addr: u64) -> Vec<u8> {
        self.mm.read_cstring(&mut self.ctx, addr, 4096).unwrap()
    }
    /// (argv, envp, auxv) as read back from the stack.
    fn stack(&mut self) -> StackReadback {
        let sp = self.img.stack_pointer;
        let argc = self.u64_at(sp);
        let mut at = sp + 8;
        let mut argv = Vec::new();
        for _ in 0..argc {
            let p = self.u64_at(at);
            argv.push(self.cstr(p));
            at += 8;
        }
        assert_eq!(self.u64_at(at), 0, "argv is NULL-terminated");
        at += 8;
        let mut envp = Vec::new();
        loop {
            let p = self.u64_at(at);
            at += 8;
            if p == 0 {
                break;
            }
            envp.push(self.cstr(p));
        }
        let mut auxv = Vec::new();
        loop {
            let k = self.u64_at(at);
            let v = self.u64_at(at + 8);
            at += 16;
            if k == AT_NULL {
                break;
            }
            auxv.push((k, v));
        }
        (argv, envp, auxv)
    }
}

fn aux(auxv: &[(u64, u64)], key: u64) -> Option<u64> {
    auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn file_bytes(path: &Path, off: u64, n: usize) -> Vec<u8> {
    let f = std::fs::read(path).unwrap();
    f[off as usize..off as usize + n].to_vec()
}

#[test]
fn static_busybox_loads_at_link_addresses_with_a_linux_stack() {
    let path = Path::new("/usr/bin/busybox");
    let info = ElfInfo::parse(&MappedFile::open_host(path).unwrap(), 4096).unwrap();
    let mut l = load_path(path).unwrap();
    let (argv, envp, auxv) = l.stack();
    let phdr_mem = l.bytes(aux(&auxv, AT_PHDR).unwrap(), info.phnum as usize * 56);
    let random = l.bytes(aux(&auxv, AT_RANDOM).unwrap(), 16);
    let execfn = l.cstr(aux(&auxv, AT_EXECFN).unwrap());
    let platform = l.cstr(aux(&auxv, AT_PLATFORM).unwrap());
    let entry_code = l.bytes(l.img.entry, 16);
    assert_eq!(info.e_type, elf::ET_EXEC);
    assert_eq!(l.img.entry, info.entry);
    assert_eq!(l.img.interp_base, 0);
    assert!(l.interp_asked.is_empty());
    assert_eq!(l.img.stack_pointer % 16, 0);
    assert_eq!(argv, args(&["prog", "-x", "arg two"]));
    assert_eq!(envp, args(&["A=1", "PATH=/bin"]));
    assert_eq!(
        phdr_mem,
        file_bytes(path, info.phoff, info.phnum as usize * 56)
    );
    assert_eq!(random, b"0123456789abcdef");
    assert_eq!(execfn, b"/usr/bin/prog");
    assert_eq!(platform, b"x86_64");
    assert_eq!(aux(&auxv, AT_PAGESZ), Some(4096));
    assert_eq!(aux(&auxv, AT_ENTRY), Some(info.entry));
    assert_eq!(aux(&auxv, AT_PHNUM), Some(info.phnum as u64));
    assert_eq!(aux(&auxv, AT_PHENT), Some(56));
    assert_eq!(aux(&auxv, AT_CLKTCK), Some(100));
    assert_eq!(aux(&auxv, AT_UID), Some(1000));
    assert_eq!(aux(&auxv, AT_EGID), Some(7));
    assert_eq!(aux(&auxv, AT_BASE), Some(0));
    assert_eq!(aux(&auxv, AT_SYSINFO_EHDR), None, "there is no vDSO");
    assert_eq!(auxv.last().unwrap().0, AT_PLATFORM);
    assert_eq!(l.img.layout.auxv, auxv);
    // The code at the entry point is the file's.
    let text = info.loads().find(|p| p.p_flags & elf::PF_X != 0).unwrap();
    let entry_off = info.entry - text.p_vaddr + text.p_offset;
    assert_eq!(entry_code, file_bytes(path, entry_off, 16));
}

#[test]
fn busybox_bss_is_zero_and_brk_follows_it() {
    let path = Path::new("/usr/bin/busybox");
    let info = ElfInfo::parse(&MappedFile::open_host(path).unwrap(), 4096).unwrap();
    let data = *info
        .loads()
        .filter(|p| p.p_memsz > p.p_filesz)
        .last()
        .unwrap();
    let mut l = load_path(path).unwrap();
    let file_end = data.p_vaddr + data.p_filesz;
    let page_end = (file_end + 4095) & !4095;
    let tail = l.bytes(file_end, (page_end - file_end) as usize);
    let last_file_byte = l.bytes(file_end - 8, 8);
    let highest = info.loads().map(|p| p.p_vaddr + p.p_memsz).max().unwrap();
    let vma = l.mm.find_vma(file_end).unwrap().clone();
    let heap_grows = l.mm.brk(&mut l.ctx, l.img.start_brk + 10000);
    assert!(tail.iter().all(|&b| b == 0));
    assert_eq!(
        last_file_byte,
        file_bytes(path, data.p_offset + data.p_filesz - 8, 8)
    );
    assert_eq!(l.img.start_brk, (highest + 4095) & !4095);
    assert_eq!(heap_grows, l.img.start_brk + 10000);
    assert!(vma.prot.write && !vma.prot.exec);
}

#[test]
fn stack_vma_and_maps_show_the_program() {
    let l = load_path(Path::new("/usr/bin/busybox")).unwrap();
    let stack = l.mm.find_vma(l.img.stack_pointer).unwrap().clone();
    let maps = l.mm.maps_text();
    assert_eq!(stack.end, MAX - 4096);
    assert_eq!(stack.len(), DEFAULT_STACK_SIZE);
    assert_eq!(stack.name, crate::mm::VmaName::Stack);
    assert!(maps.lines().next().unwrap().starts_with("00400000-"));
    assert!(maps.lines().next().unwrap().ends_with("/usr/bin/busybox"));
    assert!(maps.contains("[stack]"));
    assert!(l.ctx.pages.is_empty() || l.ctx.pages.keys().all(|&a| a >= stack.start));
}

#[test]
fn dynamic_ls_loads_its_interpreter_and_starts_there() {
    let path = Path::new("/bin/ls");
    let interp_path = Path::new("/lib64/ld-linux-x86-64.so.2");
    let iinfo = ElfInfo::parse(&MappedFile::open_host(interp_path).unwrap(), 4096).unwrap();
    let info = ElfInfo::parse(&MappedFile::open_host(path).unwrap(), 4096).unwrap();
    let mut l = load_path(path).unwrap();
    let (_, _, auxv) = l.stack();
    let base = aux(&auxv, AT_BASE).unwrap();
    let text = iinfo.loads().find(|p| p.p_flags & elf::PF_X != 0).unwrap();
    let entry_code = l.bytes(l.img.entry, 16);
    let phdr_mem = l.bytes(aux(&auxv, AT_PHDR).unwrap(), 56);
    assert_eq!(info.e_type, elf::ET_DYN);
    assert_eq!(
        l.interp_asked,
        vec![b"/lib64/ld-linux-x86-64.so.2".to_vec()]
    );
    assert_ne!(base, 0);
    assert_eq!(base % 4096, 0);
    assert_eq!(l.img.entry, iinfo.entry + base);
    assert_eq!(aux(&auxv, AT_ENTRY), Some(info.entry + l.img.load_bias));
    assert_eq!(l.img.load_bias, (MAX / 3 * 2) & !4095);
    assert_eq!(phdr_mem, file_bytes(path, info.phoff, 56));
    assert_eq!(
        entry_code,
        file_bytes(interp_path, iinfo.entry - text.p_vaddr + text.p_offset, 16)
    );
}

#[test]
fn missing_interpreter_is_the_open_error() {
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    let mut mm = MemoryManager::new(mf, MAX);
    let mut ctx = TestCtx::new();
    let exe = MappedFile::open_host(Path::new("/bin/ls")).unwrap();
    let argv = args(&["ls"]);
    let p = ExecParams::new(&argv, &[], b"/bin/ls");
    let r = load(&mut ctx, &mut mm, &exe, &mut |_| Err(Errno::ENOENT), &p);
    assert_eq!(r.unwrap_err().code(), libc::ENOENT);
}

#[test]
fn static_pie_gets_a_load_bias_and_no_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.c");
    let out = dir.path().join("s");
    std::fs::write(&src, "int main(void){return 3;}\n").unwrap();
    let built = std::process::Command::new("gcc")
        .args(["-static-pie", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status();
    match built {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("SKIP: gcc -static-pie unavailable");
            return;
        }
    }
    let info = ElfInfo::parse(&MappedFile::open_host(&out).unwrap(), 4096).unwrap();
    let mut l = load_path(&out).unwrap();
    let (_, _, auxv) = l.stack();
    let entry_code = l.bytes(l.img.entry, 16);
    let text = info.loads().find(|p| p.p_flags & elf::PF_X != 0).unwrap();
    assert_eq!(info.e_type, elf::ET_DYN);
    assert_eq!(info.interp, None);
    assert_ne!(l.img.load_bias, 0);
    assert_eq!(l.img.entry, info.entry + l.img.load_bias);
    assert_eq!(aux(&auxv, AT_BASE), Some(0));
    assert_eq!(
        entry_code,
        file_bytes(&out, info.entry - text.p_vaddr + text.p_offset, 16)
    );
}

/// A minimal valid ET_EXEC: header, one RW PT_LOAD of the first 0x100
/// file bytes at 0x400000 with 0x3000 bytes of memory, then junk bytes
/// that must not show up in the bss.
fn mini_elf() -> Vec<u8> {
    let mut f = vec![0u8; 0x200];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&0x400080u64.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    f[ph + 4..ph + 8].copy_from_slice(&6u32.to_le_bytes()); // R|W
    f[ph + 8..ph + 16].copy_from_slice(&0u64.to_le_bytes());
    f[ph + 16..ph + 24].copy_from_slice(&0x400000u64.to_le_bytes());
    f[ph + 32..ph + 40].copy_from_slice(&0x100u64.to_le_bytes());
    f[ph + 40..ph + 48].copy_from_slice(&0x3000u64.to_le_bytes());
    f[0x80] = 0xc3;
    for b in &mut f[0x100..] {
        *b = 0xee;
    }
    f
}

fn load_bytes(bytes: &[u8]) -> SysResult<Loaded> {
    let mut t = tempfile::NamedTempFile::new().unwrap();
    t.write_all(bytes).unwrap();
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    load_file(&mf, &MappedFile::open_host(t.path()).unwrap())
}

fn enoexec(bytes: &[u8]) -> bool {
    matches!(load_bytes(bytes), Err(e) if e.code() == libc::ENOEXEC)
}

#[test]
fn minimal_elf_loads_and_its_partial_page_tail_is_zeroed() {
    let mut l = load_bytes(&mini_elf()).unwrap();
    let code = l.bytes(0x400080, 1);
    let tail = l.bytes(0x400100, 0x100);
    let bss = l.bytes(0x401000, 0x2000);
    assert_eq!(code, [0xc3]);
    assert!(
        tail.iter().all(|&b| b == 0),
        "file bytes past p_filesz leaked"
    );
    assert!(bss.iter().all(|&b| b == 0));
    assert_eq!(l.img.start_brk, 0x403000);
}

#[test]
fn truncated_header_is_enoexec() {
    assert!(enoexec(&mini_elf()[..40]));
}

#[test]
fn program_headers_outside_the_file_are_enoexec() {
    let mut f = mini_elf();
    f[32..40].copy_from_slice(&0x1_0000u64.to_le_bytes());
    assert!(enoexec(&f));
}

#[test]
fn huge_p_filesz_is_enoexec() {
    let mut f = mini_elf();
    f[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    f[64 + 40..64 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(enoexec(&f));
}

#[test]
fn huge_p_memsz_is_enoexec() {
    let mut f = mini_elf();
    f[64 + 40..64 + 48].copy_from_slice(&(u64::MAX - 5).to_le_bytes());
    assert!(enoexec(&f));
}

#[test]
fn wrong_machine_class_and_magic_are_enoexec() {
    let mut machine = mini_elf();
    machine[18] = 3; // EM_386
    let mut class = mini_elf();
    class[4] = 1;
    let mut magic = mini_elf();
    magic[1] = b'X';
    assert!(enoexec(&machine));
    assert!(enoexec(&class));
    assert!(enoexec(&magic));
}

#[test]
fn too_many_program_headers_are_enoexec() {
    let mut f = mini_elf();
    f[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(enoexec(&f));
}

#[test]
fn unterminated_interp_is_enoexec() {
    let mut f = mini_elf();
    // Turn the PT_LOAD into a PT_INTERP without a NUL, add no PT_LOAD.
    f[64..68].copy_from_slice(&3u32.to_le_bytes());
    f[64 + 8..64 + 16].copy_from_slice(&0x100u64.to_le_bytes());
    f[64 + 32..64 + 40].copy_from_slice(&8u64.to_le_bytes());
    assert!(enoexec(&f));
}

#[test]
fn empty_file_and_garbage_are_enoexec_without_panic() {
    assert!(enoexec(b""));
    assert!(enoexec(&[0xffu8; 4096]));
}

#[test]
fn oversized_argument_is_e2big() {
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    let mut mm = MemoryManager::new(mf, MAX);
    let mut ctx = TestCtx::new();
    let exe = MappedFile::open_host(Path::new("/usr/bin/busybox")).unwrap();
    let argv = vec![vec![b'a'; MAX_ARG_STRLEN]];
    let p = ExecParams::new(&argv, &[], b"x");
    let r = load(&mut ctx, &mut mm, &exe, &mut |_| Err(Errno::ENOENT), &p);
    assert_eq!(r.unwrap_err().code(), libc::E2BIG);
}

/// Deterministic mutation fuzzing of the header area: every variant must
/// load or fail with an errno, never panic.
#[test]
fn mutated_headers_never_panic() {
    let base = mini_elf();
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    let mut t = tempfile::NamedTempFile::new().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut failures = 0;
    for _ in 0..500 {
        let mut f = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % 128) as usize;
            f[at] = next() as u8;
        }
        t.as_file().set_len(0).unwrap();
        std::io::Seek::rewind(&mut t).unwrap();
        t.write_all(&f).unwrap();
        let exe = MappedFile::open_host(t.path()).unwrap();
        if load_file(&mf, &exe).is_err() {
            failures += 1;
        }
    }
    // Most mutations hit validated fields; some (e.g. padding) are benign.
    assert!(
        failures > 100,
        "only {failures} of 500 mutations were rejected"
    );
}
