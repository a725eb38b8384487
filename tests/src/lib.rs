//! Helpers shared by the integration tests: locating the `sbx` binary,
//! building C guests, running a command natively and under sbx.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The `sbx` binary next to the test executable (`target/<profile>/sbx`),
/// brought up to date once per test process.
///
/// `cargo test` does not build other packages' binaries, so the first call
/// runs `cargo build -p runsc-rs --bin sbx` for the same profile and target
/// directory (a no-op when it is current). That keeps `cargo test
/// --workspace` on a clean clone self-sufficient and never tests a stale
/// binary. Outside cargo (no `CARGO` in the environment) an existing binary
/// is used as it is.
/// (`CARGO` is taken from the test's environment, else from the build's.)
///
/// # Panics
/// If the build fails or the binary is missing, with the reason.
pub fn sbx() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_sbx).clone()
}

fn build_sbx() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/sbx
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let sbx = profile_dir.join("sbx");
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(String::from));
    if let (Some(cargo), Some(target_dir)) = (cargo, profile_dir.parent()) {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "runsc-rs", "--bin", "sbx"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("running cargo to build sbx");
        assert!(
            out.status.success(),
            "building sbx failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        sbx.exists(),
        "{} not found: build it first with `cargo build -p runsc-rs`",
        sbx.display()
    );
    sbx
}

/// Directory of the C guest sources.
pub fn guests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// How a guest is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Static,
    Dynamic,
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Compiles `tests/guests/<name>.c` with gcc into
/// `target/<profile>/sbx-guests/` (rebuilt when the source is newer) and
/// returns the executable's path.
pub fn guest(name: &str, link: Link) -> PathBuf {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = sbx().with_file_name("sbx-guests");
    std::fs::create_dir_all(&out_dir).expect("create guest build dir");
    let suffix = match link {
        Link::Static => "static",
        Link::Dynamic => "dyn",
    };
    let out = out_dir.join(format!("{name}-{suffix}"));
    let src = guests_dir().join(format!("{name}.c"));
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&out).is_some() && mtime(&out) >= mtime(&src) {
        return out;
    }
    // Build under a unique name and rename, so concurrent test binaries
    // never see a half-written executable.
    let tmp = out_dir.join(format!("{name}-{suffix}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.arg("-O1")
        .arg("-Wall")
        .arg("-pthread")
        .arg("-o")
        .arg(&tmp)
        .arg(&src);
    if link == Link::Static {
        cmd.arg("-static");
    }
    let o = cmd
        .output()
        .expect("gcc must be installed to build the C guests");
    assert!(
        o.status.success(),
        "gcc failed for {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).expect("install guest executable");
    out
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit status as a shell reports it (128+N for signal N).
    pub status: i32,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn status_of(o: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (o.status.code(), o.status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub root: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
}

fn finish(mut cmd: Command, opts: &Opts) -> Run {
    if let Some(c) = &opts.cwd {
        cmd.current_dir(c);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if opts.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = &opts.stdin {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin pipe");
        si.write_all(input).expect("write stdin");
    }
    let o = child.wait_with_output().expect("wait");
    Run {
        status: status_of(&o),
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

/// Runs `argv` under `sbx run`.
pub fn run_sbx(argv: &[&str], opts: &Opts) -> Run {
    let mut cmd = Command::new(sbx());
    cmd.arg("run");
    if let Some(r) = &opts.root {
        cmd.arg("--root").arg(r);
    }
    cmd.arg("--").args(argv);
    finish(cmd, opts)
}

/// Runs `argv` natively with the same options (no root change).
pub fn run_native(argv: &[&str], opts: &Opts) -> Run {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    finish(cmd, opts)
}

/// Runs `sh -c script` with busybox under sbx and natively, and asserts
/// identical stdout and exit status.
pub fn assert_same_as_native(script: &str, opts: &Opts) -> Run {
    let argv = ["/usr/bin/busybox", "sh", "-c", script];
    // The sandbox first: its writes stay in its overlay, while the native
    // run's writes land in the host directory the sandbox would then see.
    let sandboxed = run_sbx(&argv, opts);
    let native = run_native(&argv, opts);
    assert_eq!(
        sandboxed.stdout_str(),
        native.stdout_str(),
        "stdout differs for {script:?}\nsbx stderr: {}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    assert_eq!(
        sandboxed.status,
        native.status,
        "exit status differs for {script:?}\nsbx stderr: {}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    sandboxed
}
