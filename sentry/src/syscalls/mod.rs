//! The x86-64 system-call table and its handlers, grouped by family.
