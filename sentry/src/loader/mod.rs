//! ELF loading and the initial process stack.
