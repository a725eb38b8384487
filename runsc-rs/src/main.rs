//! `sbx`: the command-line front end of the sandbox.
#![forbid(unsafe_code)]

fn main() {}
