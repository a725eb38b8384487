//! `#!` interpreter scripts (compare Linux fs/binfmt_script.c).

use crate::errno::{Errno, SysResult};

/// Bytes of the file Linux examines (`BINPRM_BUF_SIZE`).
pub const BINPRM_BUF_SIZE: usize = 256;

/// A parsed `#!` line and the argument vector to execute instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter path (executed next; the caller resolves it and
    /// loads it, recursing at most a few levels as Linux does).
    pub interpreter: Vec<u8>,
    /// The optional single argument (everything after the interpreter up
    /// to the end of the line, surrounding blanks trimmed).
    pub arg: Option<Vec<u8>>,
    /// `[interpreter, arg?, filename, argv[1..]...]`.
    pub argv: Vec<Vec<u8>>,
}

/// Parses the start of a file (`head`: its first bytes; at most
/// [`BINPRM_BUF_SIZE`] are looked at). Returns `None` if it is not a
/// `#!` script, `Some(Err(ENOEXEC))` if the line is unusable (no
/// interpreter, or the interpreter name is cut off by the 256-byte limit).
///
/// `filename` is the path the script was executed by (it replaces
/// `argv[0]`, like Linux's `bprm->filename`).
pub fn parse_shebang(head: &[u8], argv: &[Vec<u8>], filename: &[u8]) -> Option<SysResult<Shebang>> {
    let buf = &head[..head.len().min(BINPRM_BUF_SIZE)];
    let rest = buf.strip_prefix(b"#!")?;
    Some(
        parse_line(rest, buf.len() == BINPRM_BUF_SIZE).map(|(interpreter, arg)| {
            let mut new_argv = vec![interpreter.clone()];
            if let Some(a) = &arg {
                new_argv.push(a.clone());
            }
            new_argv.push(filename.to_vec());
            new_argv.extend(argv.iter().skip(1).cloned());
            Shebang {
                interpreter,
                arg,
                argv: new_argv,
            }
        }),
    )
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn parse_line(rest: &[u8], full_buffer: bool) -> SysResult<(Vec<u8>, Option<Vec<u8>>)> {
    let (line, terminated) = match rest.iter().position(|&b| b == b'\n' || b == 0) {
        Some(i) => (&rest[..i], true),
        None => (rest, !full_buffer),
    };
    let start = line
        .iter()
        .position(|&b| !is_blank(b))
        .ok_or(Errno::ENOEXEC.because("#! line names no interpreter"))?;
    let line = &line[start..];
    let name_end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    if name_end == line.len() && !terminated {
        // Linux: the interpreter name itself was truncated.
        return Err(Errno::ENOEXEC.because("#! interpreter name exceeds the 256-byte limit"));
    }
    let interpreter = line[..name_end].to_vec();
    let arg_part = &line[name_end..];
    let a_start = arg_part.iter().position(|&b| !is_blank(b));
    let arg = a_start.map(|s| {
        let a = &arg_part[s..];
        let end = a.iter().rposition(|&b| !is_blank(b)).map_or(0, |e| e + 1);
        a[..end].to_vec()
    });
    Ok((interpreter, arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn interpreter_and_single_argument_replace_argv0() {
        let s = parse_shebang(b"#! /bin/sh  -e -x \nrest", &args(&["x", "a1"]), b"/t/s.sh")
            .unwrap()
            .unwrap();
        assert_eq!(s.interpreter, b"/bin/sh");
        assert_eq!(s.arg.as_deref(), Some(&b"-e -x"[..]));
        assert_eq!(s.argv, args(&["/bin/sh", "-e -x", "/t/s.sh", "a1"]));
    }

    #[test]
    fn no_argument_when_line_has_only_interpreter() {
        let s = parse_shebang(b"#!/usr/bin/env\n", &args(&["p"]), b"p")
            .unwrap()
            .unwrap();
        assert_eq!(s.arg, None);
        assert_eq!(s.argv, args(&["/usr/bin/env", "p"]));
    }

    #[test]
    fn not_a_script_is_none() {
        assert!(parse_shebang(b"\x7fELF", &[], b"f").is_none());
    }

    #[test]
    fn empty_or_truncated_interpreter_is_enoexec() {
        let empty = parse_shebang(b"#!   \n", &[], b"f").unwrap();
        let mut long = b"#!/".to_vec();
        long.extend(vec![b'a'; 300]);
        let truncated = parse_shebang(&long, &[], b"f").unwrap();
        assert_eq!(empty.unwrap_err().code(), libc::ENOEXEC);
        assert_eq!(truncated.unwrap_err().code(), libc::ENOEXEC);
    }

    #[test]
    fn a_long_argument_is_cut_at_256_bytes_but_accepted() {
        let mut line = b"#!/bin/sh ".to_vec();
        line.extend(vec![b'b'; 300]);
        let s = parse_shebang(&line, &[], b"f").unwrap().unwrap();
        assert_eq!(s.arg.unwrap().len(), BINPRM_BUF_SIZE - 10);
    }
}
