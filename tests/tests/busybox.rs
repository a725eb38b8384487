//! busybox-static scripts under sbx, compared byte for byte with the same
//! script run natively (same cwd, same environment). Commands are chosen
//! so their output is deterministic (no pids, no times of changing files).

use std::path::Path;

use tests::{assert_same_as_native, run_sbx, Opts};

/// A temp directory with a small, fixed tree to work on.
fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path();
    std::fs::create_dir_all(p.join("src/sub/deeper")).expect("mkdir");
    std::fs::write(p.join("src/a.txt"), "pear\napple\nfig\napple\nbanana\n").expect("write");
    std::fs::write(p.join("src/b.txt"), "one two three\nfour five\n\nsix\n").expect("write");
    std::fs::write(p.join("src/sub/c.csv"), "x,1\ny,22\nz,333\nx,4\n").expect("write");
    std::fs::write(p.join("src/sub/deeper/d.txt"), "deep\n").expect("write");
    std::os::unix::fs::symlink("a.txt", p.join("src/link")).expect("symlink");
    // Fixed mtimes so `ls -l` is stable.
    for f in [
        "src/a.txt",
        "src/b.txt",
        "src/sub/c.csv",
        "src/sub/deeper/d.txt",
        "src/sub/deeper",
        "src/sub",
    ] {
        let t = std::fs::File::open(p.join(f)).expect("open");
        t.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000))
            .expect("set mtime");
    }
    d
}

fn in_dir(d: &Path) -> Opts {
    Opts {
        cwd: Some(d.to_path_buf()),
        env: vec![("LC_ALL".into(), "C".into())],
        ..Default::default()
    }
}

#[test]
fn echo_hi() {
    let r = assert_same_as_native("echo hi", &Opts::default());
    assert_eq!(r.stdout_str(), "hi\n");
}

#[test]
fn pipelines_redirections_subshells_substitution_loops() {
    let d = fixture();
    assert_same_as_native(
        "cat src/a.txt | sort | uniq -c | sort -rn; \
         x=$(wc -l < src/b.txt); echo \"lines=$x\"; \
         (cd src/sub && cat c.csv) > out.txt 2>&1; cat out.txt; \
         for i in 1 2 3; do echo \"n$i\"; done | tr n N; \
         i=0; while [ $i -lt 5 ]; do i=$((i+1)); done; echo $i; \
         { echo a; echo b; } | wc -l; \
         echo err 1>&2 2>/dev/null; \
         false || echo recovered; exit 3",
        &in_dir(d.path()),
    );
}

// `ls -l`'s "total" and `ls -s` compare st_blocks: the host's allocation
// for files not written in the sandbox.
#[test]
fn ls_cat_grep_sed_awk_find() {
    let d = fixture();
    assert_same_as_native(
        "ls -l src src/sub; ls -ls src/sub; ls -la src/sub/deeper | tail -1; cat src/link; \
         grep -n apple src/a.txt; grep -c '' src/b.txt; \
         sed -e 's/apple/APPLE/g' -e '/fig/d' src/a.txt; \
         awk -F, '{s[$1]+=$2} END {for (k in s) print k, s[k]}' src/sub/c.csv | sort; \
         find src | sort; find src -type f -name '*.txt' | sort; \
         wc src/a.txt src/b.txt; head -2 src/a.txt; tail -n1 src/b.txt",
        &in_dir(d.path()),
    );
}

#[test]
fn tar_of_a_directory_written_into_the_overlay() {
    let d = fixture();
    assert_same_as_native(
        "mkdir -p made/x && echo hello > made/x/f && seq 1 500 > made/n && \
         tar cf made.tar made && tar tf made.tar | sort && mkdir unpacked && \
         cd unpacked && tar xf ../made.tar && cat made/x/f && md5sum made/n",
        &in_dir(d.path()),
    );
}

#[test]
fn seq_md5sum_large_pipe() {
    let r = assert_same_as_native("seq 1 100000 | md5sum", &Opts::default());
    assert_eq!(r.stdout_str(), "dea9193b768319cbb4ff1a137ac03113  -\n");
}

#[test]
fn exit_status_of_a_signaled_shell_is_128_plus_n() {
    let r = run_sbx(
        &["/usr/bin/busybox", "sh", "-c", "kill -TERM $$"],
        &Opts::default(),
    );
    assert_eq!(r.status, 128 + 15);
}

#[test]
fn writes_never_reach_the_host_directory() {
    let d = fixture();
    let before = std::fs::read(d.path().join("src/a.txt")).expect("read");
    let r = run_sbx(
        &[
            "/usr/bin/busybox",
            "sh",
            "-c",
            "echo new > created.txt && echo changed > src/a.txt && rm src/b.txt && \
             mkdir newdir && cat created.txt src/a.txt && ls src",
        ],
        &in_dir(d.path()),
    );
    assert_eq!(r.stdout_str(), "new\nchanged\na.txt\nlink\nsub\n");
    assert_eq!(r.status, 0);
    assert!(!d.path().join("created.txt").exists());
    assert!(!d.path().join("newdir").exists());
    assert!(d.path().join("src/b.txt").exists());
    assert_eq!(
        std::fs::read(d.path().join("src/a.txt")).expect("read"),
        before
    );
}

#[test]
fn stdin_is_passed_through() {
    let opts = Opts {
        stdin: Some(b"zeta\nalpha\nmid\n".to_vec()),
        ..Default::default()
    };
    let r = assert_same_as_native("sort", &opts);
    assert_eq!(r.stdout_str(), "alpha\nmid\nzeta\n");
}

#[test]
fn program_found_through_path_and_missing_program_is_127() {
    let r = run_sbx(&["busybox", "echo", "via PATH"], &Opts::default());
    assert_eq!(r.stdout_str(), "via PATH\n");
    let missing = run_sbx(&["no-such-program-sbx"], &Opts::default());
    assert_eq!(missing.status, 127);
}

#[test]
fn scripts_shebang_exec_errors_and_proc_self() {
    let d = fixture();
    let p = d.path();
    std::fs::write(
        p.join("script.sh"),
        "#!/usr/bin/busybox sh\necho \"script [$0] [$1]\"\nexit 9\n",
    )
    .expect("write");
    std::fs::write(p.join("envscript"), "#!/usr/bin/env busybox\n").expect("write");
    std::fs::write(p.join("plain.txt"), "not a program\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.join("script.sh"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(p.join("envscript"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    assert_same_as_native(
        "./script.sh one; echo \"status $?\"; \
         ./plain.txt 2>/dev/null; echo \"noexec $?\"; \
         ./missing 2>/dev/null; echo \"missing $?\"; \
         readlink /proc/self/exe; cat /proc/self/cmdline | tr '\\0' ' '; echo; \
         ./envscript true; echo \"env $?\"",
        &in_dir(p),
    );
}

#[test]
fn named_pipe_between_a_writer_and_a_reader() {
    let d = fixture();
    let r = assert_same_as_native(
        "mkfifo ff && (seq 1 2000 > ff &) && wc -l < ff; ls -l ff | cut -c1",
        &in_dir(d.path()),
    );
    assert_eq!(r.stdout_str(), "2000\np\n");
}

/// SIGINT (as from a terminal's Ctrl-C) and SIGTERM (as from a runtime's
/// stop) sent to `sbx` reach the sandbox, whose handlers run, instead of
/// killing `sbx`.
#[test]
fn host_signals_are_forwarded_into_the_sandbox() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(tests::sbx())
        .args([
            "run",
            "--",
            "/usr/bin/busybox",
            "sh",
            "-c",
            "trap 'echo got INT' INT; trap 'echo got TERM; exit 7' TERM; echo ready; \
             while true; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sbx");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("child pid");
    let kill = |sig: rustix::process::Signal| {
        rustix::process::kill_process(pid, sig).expect("kill sbx");
    };
    kill(rustix::process::Signal::Int);
    line.clear();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "got INT\n");
    kill(rustix::process::Signal::Term);
    line.clear();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "got TERM\n");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(7));
}

/// bash probes its stdin with `getpeername`: stdin is not a socket, so the
/// answer is ENOTSOCK, silently, exactly as for a non-socket fd on Linux
/// (AF_UNIX sockets are implemented, other families are EAFNOSUPPORT;
/// none is involved here), and nothing bash calls is logged unsupported.
#[test]
fn bash_runs_without_unsupported_syscall_warnings() {
    if !Path::new("/bin/bash").exists() {
        eprintln!("skipped: /bin/bash not installed");
        return;
    }
    let r = run_sbx(&["/bin/bash", "-c", "echo $((6*7))"], &Opts::default());
    assert_eq!(r.stdout_str(), "42\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "");
    assert_eq!(r.status, 0);
}
