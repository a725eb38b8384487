//! Helpers of the checkpoint tests: a private state directory per test,
//! sandboxes run in the background with their stdout read line by line,
//! `sbx checkpoint` and `sbx restore` through the real binary.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub use tests::{guest, sbx, Link};

/// A test's private state directory and image area.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A path for an image (not created).
    pub fn image(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sbx ARGS` with this test's state directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sbx());
        c.env("SBX_STATE_DIR", self.state_dir()).args(args);
        c
    }

    /// Starts `sbx run --id ID -- ARGV` in the background.
    pub fn run(&self, id: &str, argv: &[&str]) -> Sandbox {
        let mut c = self.cmd(&["run", "--id", id, "--"]);
        c.args(argv);
        Sandbox::spawn(c)
    }

    /// Like [`Env::run`] with the guest's stdin a pipe the test holds
    /// (`Sandbox::child.stdin`).
    pub fn run_stdin_pipe(&self, id: &str, argv: &[&str]) -> Sandbox {
        let mut c = self.cmd(&["run", "--id", id, "--"]);
        c.args(argv).stdin(Stdio::piped());
        Sandbox::spawn_with(c)
    }

    /// Like [`Env::restore`] with the guest's stdin a pipe the test holds.
    pub fn restore_stdin_pipe(&self, image: &Path, id: &str) -> Sandbox {
        let mut c = self.cmd(&["restore", "--image", path_str(image), "--id", id]);
        c.stdin(Stdio::piped());
        Sandbox::spawn_with(c)
    }

    /// `sbx restore --image IMAGE --id ID EXTRA...` in the background, with
    /// the guest's stdin a pipe the test holds.
    pub fn restore_with(&self, image: &Path, id: &str, extra: &[&str]) -> Sandbox {
        let mut c = self.cmd(&["restore", "--image", path_str(image), "--id", id]);
        c.args(extra).stdin(Stdio::piped());
        Sandbox::spawn_with(c)
    }

    /// Starts `sbx restore --image IMAGE --id ID` in the background.
    pub fn restore(&self, image: &Path, id: &str) -> Sandbox {
        let c = self.cmd(&["restore", "--image", path_str(image), "--id", id]);
        Sandbox::spawn(c)
    }

    /// `sbx checkpoint ID --image IMAGE EXTRA...`, asserted successful.
    pub fn checkpoint(&self, id: &str, image: &Path, extra: &[&str]) -> Output {
        let mut c = self.cmd(&["checkpoint", id, "--image", path_str(image)]);
        c.args(extra);
        let o = c.output().expect("run sbx checkpoint");
        assert!(
            o.status.success(),
            "checkpoint failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A background `sbx run`/`sbx restore` whose stdout lines arrive on a
/// channel. Killed on drop.
pub struct Sandbox {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Sandbox {
    /// Runs `c` (an `sbx run`/`restore` command line, possibly wrapped)
    /// with stdin closed and stdout read line by line.
    pub fn spawn_cmd(c: Command) -> Sandbox {
        Sandbox::spawn(c)
    }

    fn spawn(mut c: Command) -> Sandbox {
        c.stdin(Stdio::null());
        Sandbox::spawn_with(c)
    }

    fn spawn_with(mut c: Command) -> Sandbox {
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn sbx");
        let out = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Sandbox {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line (panics after `timeout` or at EOF).
    pub fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => {
                self.seen.push(l.clone());
                l
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("no output within {timeout:?}; seen so far: {:?}", self.seen)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("output ended; seen so far: {:?}", self.seen)
            }
        }
    }

    /// Writes `cmd` and a newline to the guest's stdin (a piped sandbox).
    pub fn send(&mut self, cmd: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("sandbox stdin is a pipe");
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("write to the guest's stdin");
    }

    /// Waits for a line starting with `prefix`.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self.next_line(left);
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    /// Waits for the process to exit (at most `timeout`) and returns its
    /// status code and the remaining output lines.
    pub fn finish(&mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let end = Instant::now() + timeout;
        let mut rest = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    rest.push(l);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("sandbox did not exit within {timeout:?}"),
            }
        }
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return (st.code(), rest);
            }
            assert!(
                Instant::now() < end,
                "sandbox did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
