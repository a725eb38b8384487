//! Memory: the memory file the sentry owns, address spaces (VMAs, brk,
//! page bookkeeping), demand faulting and copy-in/copy-out.
