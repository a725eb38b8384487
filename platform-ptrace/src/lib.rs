//! The ptrace implementation of `sentry::platform::Platform`.
#![deny(unsafe_code)]
