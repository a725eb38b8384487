//! `sbx kill`: send a signal to a sandbox's init.

use anyhow::{bail, Result};
use clap::Args;

use crate::control::{self, Request};
use crate::state_dir::StateDir;

/// Send SIGNAL (default SIGTERM, like `runc kill`) to the init process
/// (pid 1) of the sandbox NAME. SIGNAL is a number or a name with or
/// without `SIG` (`9`, `KILL`, `SIGKILL`). Init dies of a signal only if it
/// does not handle or ignore it, except SIGKILL which always kills.
#[derive(Debug, Args)]
pub struct KillArgs {
    pub name: String,
    #[arg(default_value = "TERM")]
    pub signal: String,
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ABRT", 6),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("WINCH", 28),
];

/// Parses a signal number or name.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("signal {n} out of range 1-64");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    match NAMES.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => Ok(*v),
        None => bail!("unknown signal {s:?}"),
    }
}

pub fn kill(args: KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    let dir = StateDir::open()?;
    let socket = dir.live_socket(&args.name)?;
    control::call(&socket, Request::Kill { signal }, |_, _| {})?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("usr1").unwrap(), 10);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("NOPE").is_err());
    }
}
