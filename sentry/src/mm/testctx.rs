//! A `Context` test double: a simulated stub address space that records
//! every `map`/`unmap`/`protect`, and a simulated guest CPU that accesses
//! memory through it (faulting into the memory manager like the platform
//! would, without the access type).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::memfile::PAGE_SIZE;
use super::{MemoryFile, MemoryManager};
use crate::platform::{Context, Event, FpState, Interrupter, PlatformError, Prot, Registers};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Map {
        addr: u64,
        len: u64,
        prot: Prot,
        off: u64,
    },
    Unmap {
        addr: u64,
        len: u64,
    },
    Protect {
        addr: u64,
        len: u64,
        prot: Prot,
    },
}

#[derive(Default)]
pub(crate) struct TestCtx {
    /// Stub page → (memory-file offset, protection).
    pub(crate) pages: BTreeMap<u64, (u64, Prot)>,
    pub(crate) calls: Vec<Call>,
}

struct NoInterrupt;
impl Interrupter for NoInterrupt {
    fn interrupt(&self) {}
}

impl TestCtx {
    pub(crate) fn new() -> TestCtx {
        TestCtx::default()
    }

    /// What the stub has at `addr`'s page.
    pub(crate) fn at(&self, addr: u64) -> Option<(u64, Prot)> {
        self.pages.get(&(addr & !(PAGE_SIZE - 1))).copied()
    }

    /// A guest store of `data` at `addr`, faulting as needed (at most a
    /// few times per page, like a CPU retrying). Returns the fault error.
    pub(crate) fn guest_write(
        &mut self,
        mm: &mut MemoryManager,
        mf: &Arc<MemoryFile>,
        addr: u64,
        data: &[u8],
    ) -> Result<(), super::FaultError> {
        for (i, &b) in data.iter().enumerate() {
            let a = addr + i as u64;
            let mut tries = 0;
            loop {
                match self.at(a) {
                    Some((off, p)) if p.write => {
                        mf.write(off + a % PAGE_SIZE, &[b]).unwrap();
                        break;
                    }
                    _ => {
                        tries += 1;
                        assert!(tries < 5, "fault loop at {a:#x}");
                        mm.handle_fault(self, a, None)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A guest load of `len` bytes at `addr`, faulting as needed.
    pub(crate) fn guest_read(
        &mut self,
        mm: &mut MemoryManager,
        mf: &Arc<MemoryFile>,
        addr: u64,
        len: usize,
    ) -> Result<Vec<u8>, super::FaultError> {
        let mut out = Vec::new();
        for i in 0..len as u64 {
            let a = addr + i;
            let mut tries = 0;
            loop {
                match self.at(a) {
                    Some((off, p)) if p != Prot::NONE => {
                        let mut b = [0u8];
                        mf.read(off + a % PAGE_SIZE, &mut b).unwrap();
                        out.push(b[0]);
                        break;
                    }
                    _ => {
                        tries += 1;
                        assert!(tries < 5, "fault loop at {a:#x}");
                        mm.handle_fault(self, a, None)?;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn err(syscall: &'static str) -> PlatformError {
    PlatformError::Injected {
        syscall,
        tid: 0,
        errno: libc::ENOMEM,
    }
}

impl Context for TestCtx {
    fn switch(&mut self, _regs: &mut Registers) -> Result<Event, PlatformError> {
        Ok(Event::Interrupted)
    }
    fn get_fp(&mut self, _fp: &mut FpState) -> Result<(), PlatformError> {
        Ok(())
    }
    fn set_fp(&mut self, _fp: &FpState) -> Result<(), PlatformError> {
        Ok(())
    }
    fn map(&mut self, addr: u64, len: u64, prot: Prot, off: u64) -> Result<(), PlatformError> {
        assert!(
            addr.is_multiple_of(PAGE_SIZE)
                && len.is_multiple_of(PAGE_SIZE)
                && off.is_multiple_of(PAGE_SIZE)
                && len > 0
        );
        self.calls.push(Call::Map {
            addr,
            len,
            prot,
            off,
        });
        for i in 0..len / PAGE_SIZE {
            self.pages
                .insert(addr + i * PAGE_SIZE, (off + i * PAGE_SIZE, prot));
        }
        Ok(())
    }
    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), PlatformError> {
        self.calls.push(Call::Unmap { addr, len });
        let keys: Vec<u64> = self
            .pages
            .range(addr..addr.saturating_add(len))
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            self.pages.remove(&k);
        }
        Ok(())
    }
    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), PlatformError> {
        self.calls.push(Call::Protect { addr, len, prot });
        // Like mprotect(2): every page must be mapped.
        for i in 0..len / PAGE_SIZE {
            match self.pages.get_mut(&(addr + i * PAGE_SIZE)) {
                Some(e) => e.1 = prot,
                None => return Err(err("mprotect")),
            }
        }
        Ok(())
    }
    fn interrupter(&self) -> Arc<dyn Interrupter> {
        Arc::new(NoInterrupt)
    }
}
