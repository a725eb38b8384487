//! Memory syscalls: thin adapters onto the task's `MemoryManager`
//! (Linux `mm/mmap.c`, `mm/mprotect.c`, `mm/mremap.c`, `mm/madvise.c`).

use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::kernel::TaskRunner;
use crate::mm::{MemoryManager, MmapFile, MmapRequest};

use super::arg_i32;

fn mm(t: &TaskRunner) -> SysResult<Arc<Mutex<MemoryManager>>> {
    t.task.tg.mm().ok_or(Errno::EFAULT)
}

fn lock(m: &Mutex<MemoryManager>) -> std::sync::MutexGuard<'_, MemoryManager> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `mmap(addr, len, prot, flags, fd, offset)`.
pub fn mmap(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[3];
    let file = if flags & libc::MAP_ANONYMOUS as u64 == 0 {
        let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
        let fd = fds.get(arg_i32(a[4]))?;
        if fd.is_dev_zero() {
            None
        } else {
            Some(MmapFile {
                file: fd.mapped_file()?,
                readable: fd.is_readable(),
                writable: fd.is_writable(),
            })
        }
    } else {
        None
    };
    // A private mapping of /dev/zero is anonymous memory (Linux
    // drivers/char/mem.c: mmap_zero).
    let flags = if file.is_none() {
        flags | libc::MAP_ANONYMOUS as u64
    } else {
        flags
    };
    let req = MmapRequest {
        addr: a[0],
        len: a[1],
        prot: a[2],
        flags,
        file,
        offset: a[5],
    };
    let m = mm(t)?;
    let r = lock(&m).mmap(&mut *t.ctx, req);
    r
}

pub fn munmap(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let m = mm(t)?;
    let r = lock(&m).munmap(&mut *t.ctx, a[0], a[1]);
    r.map(|_| 0)
}

pub fn mprotect(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let m = mm(t)?;
    let r = lock(&m).mprotect(&mut *t.ctx, a[0], a[1], a[2]);
    r.map(|_| 0)
}

pub fn mremap(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let m = mm(t)?;
    let r = lock(&m).mremap(&mut *t.ctx, a[0], a[1], a[2], a[3], a[4]);
    r
}

/// `brk(addr)`: returns the new (or unchanged) break, never an error.
pub fn brk(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let m = mm(t)?;
    let r = lock(&m).brk(&mut *t.ctx, a[0]);
    Ok(r)
}

pub fn madvise(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let m = mm(t)?;
    let r = lock(&m).madvise(&mut *t.ctx, a[0], a[1], arg_i32(a[2]));
    r.map(|_| 0)
}

/// `msync(addr, len, flags)`: a shared file mapping's pages *are* the
/// file's data (overlay shared pages, `vfs/overlay/shared_pages.rs`), so
/// there is nothing to flush; it validates and succeeds.
pub fn msync(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    if !a[0].is_multiple_of(4096) || a[2] & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 {
        return Err(Errno::EINVAL);
    }
    if a[2] & MS_ASYNC != 0 && a[2] & MS_SYNC != 0 {
        return Err(Errno::EINVAL);
    }
    let m = mm(t)?;
    let g = lock(&m);
    let end = a[0].checked_add(a[1]).ok_or(Errno::ENOMEM)?;
    let mut addr = a[0];
    while addr < end {
        let v = g.find_vma(addr).ok_or(Errno::ENOMEM)?;
        addr = v.end;
    }
    Ok(0)
}

/// `mincore(addr, len, vec)`: reports every page of a mapped range as
/// resident (the sentry faults pages in on demand; "resident in the
/// memory file" would be the precise answer, which callers don't rely on).
pub fn mincore(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if !a[0].is_multiple_of(4096) {
        return Err(Errno::EINVAL);
    }
    let pages = a[1].div_ceil(4096);
    let m = mm(t)?;
    {
        let g = lock(&m);
        let end = pages
            .checked_mul(4096)
            .and_then(|l| a[0].checked_add(l))
            .ok_or(Errno::ENOMEM)?;
        let mut addr = a[0];
        while addr < end {
            let v = g.find_vma(addr).ok_or(Errno::ENOMEM)?;
            addr = v.end;
        }
    }
    let v = vec![1u8; pages as usize];
    t.copy_out(a[2], &v)?;
    Ok(0)
}
