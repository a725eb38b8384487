//! A restore that runs out of host processes or threads partway (a `pids`
//! cgroup limit) fails at once with an error naming what it could not
//! create, leaves no process behind and no sandbox registered; with
//! enough room the same image restores and finishes.

mod checkpoint_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use checkpoint_util::*;

/// A fresh `pids` cgroup (v1 hierarchy or cgroup2 with the controller),
/// removed on drop; `None` where there is none (not root, no controller).
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn new(name: &str) -> Option<PidsCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let v2 = Path::new("/sys/fs/cgroup");
        let parent = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else if std::fs::read_to_string(v2.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"))
        {
            v2.to_path_buf()
        } else {
            return None;
        };
        let dir = parent.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        Some(PidsCgroup(dir))
    }

    fn set_max(&self, n: u32) {
        std::fs::write(self.0.join("pids.max"), n.to_string()).expect("write pids.max");
    }

    /// Tasks charged to the cgroup: threads, processes and zombies not
    /// reaped yet (which `cgroup.procs` no longer lists).
    fn current(&self) -> u32 {
        std::fs::read_to_string(self.0.join("pids.current"))
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(u32::MAX)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn running_out_of_host_tasks_mid_restore_fails_cleanly() {
    let Some(cg) = PidsCgroup::new("sbx-limits") else {
        eprintln!("skipped: no writable pids cgroup here");
        return;
    };
    let env = Env::new();
    // Six guest tasks (main, four counters, a futex waiter, a reader):
    // one host thread each, plus stubs.
    let g = guest("ckpt_threads", Link::Static);
    let mut sb = env.run("threads", &[path_str(&g)]);
    sb.wait_for("ready", Duration::from_secs(60));
    let img = env.image("img");
    env.checkpoint("threads", &img, &[]);
    let (code, _) = sb.finish(Duration::from_secs(20));
    assert_eq!(code, Some(0));

    let mut failures = Vec::new();
    let mut finished = false;
    for limit in (2..=64).step_by(2) {
        cg.set_max(limit);
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" restore --image \"$1\" --id r{limit}",
            cg.0.display()
        );
        let t = Instant::now();
        let out = Command::new("sh")
            .args(["-c", &script])
            .arg(tests::sbx())
            .arg(&img)
            .env("SBX_STATE_DIR", env.state_dir())
            .output()
            .expect("run sbx restore");
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // Every process of the attempt goes once sbx exited (its stubs
        // are reaped by whoever adopts them, which may take a moment).
        let start = Instant::now();
        while cg.current() != 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(cg.current(), 0, "tasks left after limit {limit}");
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("sentinel end"), "limit {limit}: {stdout}");
            finished = true;
            break;
        }
        assert_eq!(out.status.code(), Some(125), "limit {limit}: {err}");
        assert!(
            took < Duration::from_secs(10),
            "limit {limit}: failing took {took:?}"
        );
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("sbx: ")
                && (last.contains("(os error 11)") || last.contains("errno 11")),
            "limit {limit}: the error names the host's refusal: {err}"
        );
        assert!(!err.contains("panicked"), "limit {limit}: {err}");
        failures.push(err);
    }
    assert!(
        finished,
        "no limit up to 64 let the restore finish: {failures:#?}"
    );
    assert!(
        failures.iter().any(|e| e.contains("host thread of task")),
        "some limit must fail at a task's thread, after others started: {failures:#?}"
    );
    let list = env.cmd(&["list"]).output().expect("sbx list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains(" r"),
        "no failed restore stays registered: {list}"
    );
}

#[test]
fn a_checkpoint_with_no_room_for_threads_still_writes_the_image() {
    let Some(cg) = PidsCgroup::new("sbx-ckpt-limits") else {
        eprintln!("skipped: no writable pids cgroup here");
        return;
    };
    let env = Env::new();
    let g = guest("ckpt_counter", Link::Static);
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" run --id full -- \"$1\" 16",
        cg.0.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script])
        .arg(tests::sbx())
        .arg(&g)
        .env("SBX_STATE_DIR", env.state_dir());
    let mut sb = Sandbox::spawn_cmd(c);
    sb.wait_for("tick 1 ", Duration::from_secs(60));
    // No new thread or process fits any more: the writer's helpers cannot
    // start, so the checkpoint does the work on the control thread.
    cg.set_max(cg.current());
    for (name, compression) in [("img-none", "none"), ("img-zstd", "zstd")] {
        let img = env.image(name);
        env.checkpoint(
            "full",
            &img,
            &["--compression", compression, "--leave-running"],
        );
    }
    cg.set_max(1000);
    let _ = sb.child.kill();
    let mut rs = env.restore(&env.image("img-zstd"), "back");
    let line = rs.wait_for("tick ", Duration::from_secs(30));
    assert!(line.starts_with("tick "), "{line}");
    let mut rs2 = env.restore(&env.image("img-none"), "back2");
    let line2 = rs2.wait_for("tick ", Duration::from_secs(30));
    assert_eq!(
        line.split_whitespace().nth(3),
        line2.split_whitespace().nth(3),
        "both images hold the same memory"
    );
}
