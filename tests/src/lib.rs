//! Helpers shared by the integration tests: locating the `sbx` binary,
//! building C guests, running a command natively and under sbx.
#![forbid(unsafe_code)]
