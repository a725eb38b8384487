//! Memory: the memory file the sentry owns, address spaces (VMAs, brk,
//! page bookkeeping), demand faulting and copy-in/copy-out.
//!
//! - [`MemoryFile`] (one per sandbox, `Arc`): the memfd holding all guest
//!   memory, its refcounted page allocator, and the sentry's window onto
//!   it. The only unsafe code of `mm` is in `memfile_map.rs`.
//! - [`MemoryManager`] (one per address space, shared by a process's tasks
//!   as `Arc<Mutex<MemoryManager>>`): VMAs, page table, `mmap`/`munmap`/
//!   `mprotect`/`mremap`/`brk`/`madvise`, [`MemoryManager::handle_fault`],
//!   copy-in/out, `fork`, `/proc/<pid>/maps`.
//!
//! How the kernel uses it:
//! - syscalls: pass raw guest arguments (`MmapRequest` takes `PROT_*` and
//!   `MAP_*` bits as given); every method returns `SysResult` with Linux's
//!   errnos.
//! - faults: on `Event::Fault` with `SIGSEGV`, call `handle_fault(ctx,
//!   fault.addr, fault.write)`; on `Ok` resume, on `Err(e)` deliver
//!   `e.signal()`.
//! - guest memory: only through `copy_in`/`copy_out`/`read_cstring`/… .
//!
//! Lock order: `MemoryManager` (the caller's mutex) → an overlay
//! `Node::state` (shared file pages, `vfs/overlay/shared_pages.rs`) →
//! `MemoryFile` allocator (internal); a lazy restore's chunk locks nest
//! inside any of them (`lazy.rs`).

mod fault;
mod fork;
mod io;
pub mod lazy;
mod manager;
mod maps;
mod memfile;
mod memfile_map;
mod mmap;
mod page_alloc;
mod pte_runs;
mod remap;
mod vma;

#[cfg(test)]
pub(crate) mod testctx;
#[cfg(test)]
mod tests;

pub use fault::{FaultError, FAULT_AROUND_PAGES};
pub use io::{IoVec, UIO_MAXIOV};
pub use manager::{MemoryManager, Pte, MMAP_BASE_GAP, MMAP_MIN_ADDR};
pub use maps::MemoryUsage;
pub use memfile::{MemoryFile, MemoryFileError, DEFAULT_CAPACITY, PAGE_SIZE};
pub use mmap::{MmapFile, MmapRequest};
pub use page_alloc::{RefRuns, DEFAULT_PUNCH_THRESHOLD_PAGES};
pub use vma::{Vma, VmaBacking, VmaName};
