//! Copy-in/copy-out: the sentry's access to guest memory through the
//! memory file, checked against the VMAs (never by trusting a guest
//! pointer). Compare Linux `copy_from_user`/`copy_to_user`,
//! `strncpy_from_user`, lib/iov_iter.c.
//!
//! Partial copies: [`MemoryManager::copy_in`]/[`MemoryManager::copy_out`]
//! are all-or-nothing (`EFAULT` if any byte is inaccessible, nothing
//! copied). Handlers that must report partial progress the way Linux does
//! (`read`/`write` return the bytes transferred before the fault) use the
//! `*_partial` variants, which copy the accessible prefix and return its
//! length (`EFAULT` only when not even the first byte is accessible).

use super::fault::fault_errno;
use super::manager::{page_down, MemoryManager};
use super::memfile::PAGE_SIZE;
use super::vma::Vma;
use crate::errno::{Errno, SysResult};
use crate::platform::{Context, Prot};

/// Linux `UIO_MAXIOV`.
pub const UIO_MAXIOV: u64 = 1024;

/// One guest `struct iovec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// The loader's writes into read-only segments (Linux `padzero` and
    /// the ELF tables are written before the permissions apply).
    Force,
}

fn allows(v: &Vma, access: Access) -> bool {
    match access {
        // x86: any protection other than PROT_NONE is readable.
        Access::Read => v.prot != Prot::NONE,
        Access::Write => v.prot.write,
        Access::Force => true,
    }
}

fn efault() -> Errno {
    Errno::EFAULT.because("bad guest address")
}

impl MemoryManager {
    /// How many bytes from `addr` (at most `len`) lie in consecutive VMAs
    /// allowing `access`.
    fn accessible(&self, addr: u64, len: u64, access: Access) -> u64 {
        let Some(end) = addr.checked_add(len) else {
            // An overflowing range is never fully accessible; what lies
            // below the top of the address space may be.
            return self.accessible(addr, u64::MAX - addr, access).min(len);
        };
        let mut at = addr;
        while at < end {
            match self.find_vma(at) {
                Some(v) if allows(v, access) => at = v.end,
                _ => break,
            }
        }
        at.min(end) - addr
    }

    /// Reads guest memory at `addr` into `buf`; `EFAULT` (nothing read) if
    /// any byte is not readable.
    pub fn copy_in(&mut self, _ctx: &mut dyn Context, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        if self.accessible(addr, buf.len() as u64, Access::Read) < buf.len() as u64 {
            return Err(efault());
        }
        self.read_accessible(addr, buf)
    }

    /// Reads the readable prefix of `[addr, addr+buf.len())`; returns its
    /// length (`EFAULT` if it is empty and `buf` is not).
    pub fn copy_in_partial(
        &mut self,
        _ctx: &mut dyn Context,
        addr: u64,
        buf: &mut [u8],
    ) -> SysResult<usize> {
        let n = self.accessible(addr, buf.len() as u64, Access::Read) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(efault());
        }
        self.read_accessible(addr, &mut buf[..n])?;
        Ok(n)
    }

    fn read_accessible(&mut self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let page = page_down(a);
            let in_page = (a - page) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            let off = match self.ptes.get(&page) {
                Some(p) => Some(p.off),
                None => {
                    let v = self.find_vma(page).ok_or_else(efault)?.clone();
                    if v.is_anonymous() {
                        None
                    } else {
                        Some(self.populate_page(&v, page)?)
                    }
                }
            };
            match off {
                Some(o) => self.mf.read(o + in_page as u64, dst)?,
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` to guest memory at `addr`; `EFAULT` (nothing written)
    /// if any byte is not writable. Unpopulated pages are allocated
    /// sentry-side; copy-on-write pages are broken, and the stub's mapping
    /// of them is replaced by the new page (hence `ctx`).
    pub fn copy_out(&mut self, ctx: &mut dyn Context, addr: u64, data: &[u8]) -> SysResult<()> {
        if self.accessible(addr, data.len() as u64, Access::Write) < data.len() as u64 {
            return Err(efault());
        }
        self.write_accessible(ctx, addr, data)
    }

    /// Writes the writable prefix of the range; returns its length
    /// (`EFAULT` if it is empty and `data` is not).
    pub fn copy_out_partial(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        data: &[u8],
    ) -> SysResult<usize> {
        let n = self.accessible(addr, data.len() as u64, Access::Write) as usize;
        if n == 0 && !data.is_empty() {
            return Err(efault());
        }
        self.write_accessible(ctx, addr, &data[..n])?;
        Ok(n)
    }

    /// Writes regardless of the VMAs' protection (mapped ranges only): for
    /// the loader, which fills read-only segments' partial pages.
    pub(crate) fn copy_out_force(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        data: &[u8],
    ) -> SysResult<()> {
        if self.accessible(addr, data.len() as u64, Access::Force) < data.len() as u64 {
            return Err(efault());
        }
        self.write_accessible(ctx, addr, data)
    }

    fn write_accessible(&mut self, ctx: &mut dyn Context, addr: u64, data: &[u8]) -> SysResult<()> {
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let page = page_down(a);
            let in_page = a - page;
            let n = (PAGE_SIZE - in_page).min((data.len() - done) as u64) as usize;
            let off = self.writable_page(ctx, page)?;
            self.mf.write(off + in_page, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// The memory-file offset of `page`, populated and exclusively owned
    /// (copy-on-write broken; the stub remapped if it had the old page).
    fn writable_page(&mut self, ctx: &mut dyn Context, page: u64) -> SysResult<u64> {
        let v = self.find_vma(page).ok_or_else(efault)?.clone();
        self.populate_page(&v, page)?;
        let changed = self.break_cow(&v, page).map_err(fault_errno)?;
        let pte = self.ptes.get_mut(&page).ok_or_else(efault)?;
        if changed && pte.stub.is_some() {
            // The new page is a fresh copy (never pending in a lazy
            // restore), but every map goes through the same check.
            self.mf.prepare_map(pte.off, PAGE_SIZE).map_err(|_| {
                Errno::EIO.because("guest memory could not be loaded from the image")
            })?;
            ctx.map(page, PAGE_SIZE, v.prot, pte.off)
                .map_err(super::manager::platform_errno)?;
            pte.stub = Some(v.prot);
        }
        Ok(pte.off)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (excluding the
    /// NUL), returned without the NUL. `ENAMETOOLONG` if no NUL is found
    /// within `max` bytes (what `getname` returns; other callers map it as
    /// they need), `EFAULT` if the string runs into inaccessible memory.
    pub fn read_cstring(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        max: usize,
    ) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        loop {
            let room = max.saturating_add(1).saturating_sub(out.len());
            if room == 0 {
                return Err(Errno::ENAMETOOLONG.because("string has no NUL within the limit"));
            }
            let in_page = PAGE_SIZE - (at % PAGE_SIZE);
            let n = in_page.min(room as u64) as usize;
            let mut chunk = vec![0u8; n];
            self.copy_in(ctx, at, &mut chunk)?;
            if let Some(z) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            at = at.checked_add(n as u64).ok_or_else(efault)?;
        }
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&mut self, ctx: &mut dyn Context, addr: u64) -> SysResult<u32> {
        let mut b = [0u8; 4];
        self.copy_in(ctx, addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&mut self, ctx: &mut dyn Context, addr: u64) -> SysResult<u64> {
        let mut b = [0u8; 8];
        self.copy_in(ctx, addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&mut self, ctx: &mut dyn Context, addr: u64, v: u32) -> SysResult<()> {
        self.copy_out(ctx, addr, &v.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, ctx: &mut dyn Context, addr: u64, v: u64) -> SysResult<()> {
        self.copy_out(ctx, addr, &v.to_le_bytes())
    }

    /// Reads a guest iovec array (Linux `import_iovec`): `EINVAL` for more
    /// than [`UIO_MAXIOV`] entries or a total length above `isize::MAX`,
    /// `EFAULT` for an unreadable array. Entry buffers are not checked here
    /// (the copy does that).
    pub fn read_iovecs(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        count: u64,
    ) -> SysResult<Vec<IoVec>> {
        if count > UIO_MAXIOV {
            return Err(Errno::EINVAL.because("iovec count above UIO_MAXIOV"));
        }
        let mut raw = vec![0u8; count as usize * 16];
        self.copy_in(ctx, addr, &mut raw)?;
        let mut total: u64 = 0;
        let mut out = Vec::with_capacity(count as usize);
        for e in raw.chunks_exact(16) {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e[..8]);
            let base = u64::from_le_bytes(b);
            b.copy_from_slice(&e[8..]);
            let len = u64::from_le_bytes(b);
            total = total
                .checked_add(len)
                .filter(|&t| t <= isize::MAX as u64)
                .ok_or(Errno::EINVAL.because("iovec total length overflows"))?;
            out.push(IoVec { base, len });
        }
        Ok(out)
    }

    /// Gathers up to `max` bytes from `iovs` (for `writev`-like calls).
    /// Stops at the first inaccessible byte; `EFAULT` only if nothing at
    /// all could be read from a non-empty request.
    pub fn copy_in_iovecs(
        &mut self,
        ctx: &mut dyn Context,
        iovs: &[IoVec],
        max: usize,
    ) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        for iov in iovs {
            let want = (iov.len as usize).min(max - out.len());
            if want == 0 {
                continue;
            }
            let start = out.len();
            out.resize(start + want, 0);
            match self.copy_in_partial(ctx, iov.base, &mut out[start..]) {
                Ok(n) if n == want => {}
                Ok(n) => {
                    out.truncate(start + n);
                    break;
                }
                Err(e) => {
                    out.truncate(start);
                    if out.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    /// Scatters `data` over `iovs` (for `readv`-like calls); returns the
    /// bytes written, stopping at the first inaccessible byte; `EFAULT`
    /// only if nothing at all could be written for non-empty `data`.
    pub fn copy_out_iovecs(
        &mut self,
        ctx: &mut dyn Context,
        iovs: &[IoVec],
        data: &[u8],
    ) -> SysResult<usize> {
        let mut done = 0usize;
        for iov in iovs {
            let want = (iov.len as usize).min(data.len() - done);
            if want == 0 {
                continue;
            }
            match self.copy_out_partial(ctx, iov.base, &data[done..done + want]) {
                Ok(n) => {
                    done += n;
                    if n < want {
                        break;
                    }
                }
                Err(e) => {
                    if done == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
            if done == data.len() {
                break;
            }
        }
        Ok(done)
    }
}
