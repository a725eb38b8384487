//! Memory: the memory file the sentry owns, address spaces (VMAs, brk,
//! page bookkeeping), demand faulting and copy-in/copy-out.

mod memfile;
mod memfile_map;
mod page_alloc;

pub use memfile::{MemoryFile, MemoryFileError, MemoryFileState, DEFAULT_CAPACITY, PAGE_SIZE};
pub use page_alloc::{RefRuns, DEFAULT_PUNCH_THRESHOLD_PAGES};
