//! Guest memory access for syscall handlers: every guest pointer goes
//! through the task's memory manager (EFAULT on anything not mapped with
//! the needed permission). Never trusts a guest address.

use super::super::thread_group::lock;
use super::run::TaskRunner;
use crate::errno::{Errno, SysResult};

/// Longest path a syscall accepts (`PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;

impl TaskRunner {
    fn mm_or_fault(&self) -> SysResult<std::sync::Arc<std::sync::Mutex<crate::mm::MemoryManager>>> {
        self.task
            .tg
            .mm()
            .ok_or(Errno::EFAULT.because("no address space"))
    }

    /// Copies `buf.len()` bytes from guest `addr`.
    pub fn copy_in(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_in(&mut *self.ctx, addr, buf);
        r
    }

    /// Copies `data` to guest `addr`.
    pub fn copy_out(&mut self, addr: u64, data: &[u8]) -> SysResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_out(&mut *self.ctx, addr, data);
        r
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL); `ENAMETOOLONG` if longer.
    pub fn read_cstring(&mut self, addr: u64, max: usize) -> SysResult<Vec<u8>> {
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).read_cstring(&mut *self.ctx, addr, max);
        r
    }

    /// Reads a path argument (`PATH_MAX`; empty → ENOENT is the caller's
    /// choice since `AT_EMPTY_PATH` allows it).
    pub fn read_path(&mut self, addr: u64) -> SysResult<Vec<u8>> {
        self.read_cstring(addr, PATH_MAX)
    }

    pub fn read_u64(&mut self, addr: u64) -> SysResult<u64> {
        let mut b = [0u8; 8];
        self.copy_in(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&mut self, addr: u64) -> SysResult<u32> {
        let mut b = [0u8; 4];
        self.copy_in(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn write_u64(&mut self, addr: u64, v: u64) -> SysResult<()> {
        self.copy_out(addr, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, addr: u64, v: u32) -> SysResult<()> {
        self.copy_out(addr, &v.to_le_bytes())
    }

    pub fn read_array<const N: usize>(&mut self, addr: u64) -> SysResult<[u8; N]> {
        let mut b = [0u8; N];
        self.copy_in(addr, &mut b)?;
        Ok(b)
    }

    /// Reads a NULL-terminated array of string pointers (argv, envp), with
    /// Linux's limits (`MAX_ARG_STRINGS`, total size → E2BIG).
    pub fn read_string_array(&mut self, addr: u64) -> SysResult<Vec<Vec<u8>>> {
        const MAX_STRINGS: usize = 0x7fff_ffff;
        const MAX_TOTAL: usize = 32 << 20;
        let mut out = Vec::new();
        if addr == 0 {
            return Ok(out);
        }
        let mut total = 0usize;
        for i in 0..MAX_STRINGS {
            let p = self.read_u64(addr.checked_add(i as u64 * 8).ok_or(Errno::EFAULT)?)?;
            if p == 0 {
                break;
            }
            let s = self.read_cstring(p, 128 * 1024)?;
            total += s.len() + 1;
            if total > MAX_TOTAL {
                return Err(Errno::E2BIG);
            }
            out.push(s);
        }
        Ok(out)
    }
}

impl TaskRunner {
    /// Copies the readable prefix of `[addr, addr+buf.len())`; returns its
    /// length (EFAULT if not even one byte is readable).
    pub fn copy_in_partial(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_in_partial(&mut *self.ctx, addr, buf);
        r
    }

    /// Copies `data` to the writable prefix at `addr`; returns its length.
    pub fn copy_out_partial(&mut self, addr: u64, data: &[u8]) -> SysResult<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_out_partial(&mut *self.ctx, addr, data);
        r
    }

    /// How many bytes from `addr` (at most `len`) lie in consecutive
    /// writable VMAs: a read clamps its count to this before taking data
    /// out of a pipe or advancing a file offset, so bytes that could not
    /// be copied stay unread (Linux copies as it consumes and stops at the
    /// first fault). A concurrent `munmap` by another thread between this
    /// check and the copy can still shorten the copy.
    pub fn writable_prefix(&self, addr: u64, len: usize) -> usize {
        let Ok(mm) = self.mm_or_fault() else {
            return 0;
        };
        let mm = lock(&mm);
        let end = addr.saturating_add(len as u64);
        let mut at = addr;
        while at < end {
            match mm.find_vma(at) {
                Some(v) if v.prot.write => at = v.end,
                _ => break,
            }
        }
        (at.min(end) - addr) as usize
    }

    /// [`Self::writable_prefix`] over an iovec array: the bytes up to the
    /// first one that is not writable.
    pub fn writable_prefix_iovecs(&self, iovs: &[crate::mm::IoVec]) -> usize {
        let mut total = 0usize;
        for iov in iovs {
            let n = self.writable_prefix(iov.base, iov.len as usize);
            total = total.saturating_add(n);
            if (n as u64) < iov.len {
                break;
            }
        }
        total
    }

    /// Reads a guest iovec array.
    pub fn read_iovecs(&mut self, addr: u64, count: u64) -> SysResult<Vec<crate::mm::IoVec>> {
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).read_iovecs(&mut *self.ctx, addr, count);
        r
    }

    /// Gathers up to `max` bytes from guest iovecs.
    pub fn copy_in_iovecs(&mut self, iovs: &[crate::mm::IoVec], max: usize) -> SysResult<Vec<u8>> {
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_in_iovecs(&mut *self.ctx, iovs, max);
        r
    }

    /// Scatters `data` into guest iovecs; returns the bytes written.
    pub fn copy_out_iovecs(&mut self, iovs: &[crate::mm::IoVec], data: &[u8]) -> SysResult<usize> {
        let mm = self.mm_or_fault()?;
        let r = lock(&mm).copy_out_iovecs(&mut *self.ctx, iovs, data);
        r
    }
}
