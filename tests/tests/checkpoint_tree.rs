//! A process tree with pipes, an overlay file, an open host file and a
//! pending blocked signal survives checkpoint/restore (issue 4).

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

/// Fields of `round R pids P C1 C2 C3 G off O filelen F pending S`.
struct Round {
    round: u64,
    pids: Vec<i32>,
    off: u64,
    filelen: u64,
    pending: u32,
}

fn parse(line: &str) -> Round {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 14, "bad line {line:?}");
    let n = |i: usize| f[i].parse::<u64>().expect("number");
    Round {
        round: n(1),
        pids: f[3..8].iter().map(|p| p.parse().expect("pid")).collect(),
        off: n(9),
        filelen: n(11),
        pending: n(13) as u32,
    }
}

#[test]
fn process_tree_files_and_pending_signal_survive() {
    let env = Env::new();
    let host_file = env.dir.path().join("input.bin");
    std::fs::write(&host_file, vec![b'x'; 4096]).expect("host file");
    let overlay_file = format!("/tmp/ckpt-tree-{}", std::process::id());
    let g = guest("ckpt_tree", Link::Static);
    let mut sb = env.run("tree", &[path_str(&g), path_str(&host_file), &overlay_file]);
    sb.wait_for("round 2 ", START);
    let img = env.image("img");

    env.checkpoint("tree", &img, &[]);
    let _ = sb.finish(STEP);
    let before = parse(
        sb.seen
            .iter()
            .rev()
            .find(|l| l.starts_with("round"))
            .expect("a round"),
    );
    let mut rs = env.restore(&img, "tree-restored");
    let after = parse(&rs.next_line(STEP));

    assert_eq!(after.round, before.round + 1);
    assert_eq!(after.pids, before.pids, "same PIDs in the sandbox");
    assert_eq!(after.pids[0], 1, "the guest is init");
    assert_eq!(after.off, before.off + 1, "host file offset kept");
    assert_eq!(
        after.filelen,
        before.filelen + format!("r{};", after.round).len() as u64,
        "overlay file contents kept"
    );
    assert_eq!(after.pending, 1, "blocked SIGUSR2 still pending");
    assert!(
        !std::path::Path::new(&overlay_file).exists(),
        "overlay writes never reach the host"
    );
}

#[test]
fn restore_refuses_a_host_file_changed_since_the_checkpoint() {
    let env = Env::new();
    let host_file = env.dir.path().join("input.bin");
    std::fs::write(&host_file, vec![b'x'; 4096]).expect("host file");
    let overlay_file = format!("/tmp/ckpt-tree-changed-{}", std::process::id());
    let g = guest("ckpt_tree", Link::Static);
    let mut sb = env.run("tree", &[path_str(&g), path_str(&host_file), &overlay_file]);
    sb.wait_for("round 1 ", START);
    let img = env.image("img");
    env.checkpoint("tree", &img, &[]);
    let _ = sb.finish(STEP);

    std::fs::write(&host_file, vec![b'y'; 5000]).expect("change host file");
    let o = env
        .cmd(&["restore", "--image", path_str(&img)])
        .output()
        .expect("restore");

    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125));
    assert!(o.stdout.is_empty(), "no guest output");
    assert!(err.contains("input.bin changed or vanished"), "{err}");
}
