//! Unix sockets, epoll, eventfd and advisory locks through the real `sbx`
//! binary: self-checking C guests (`tests/guests/sock_*.c`) print `OK`
//! only when every check holds, and each is run natively too so the
//! checks themselves are known to describe Linux.

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::{guest, Link};
use tests::{run_native, run_sbx, Opts};

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs guest `name` natively and under sbx; both must print exactly
/// `OK` and exit 0.
fn same_as_native(name: &str, link: Link) {
    let exe = guest(name, link);
    let argv = [path(&exe)];
    let native = run_native(&argv, &Opts::default());
    assert_eq!(
        native.stdout_str(),
        "OK\n",
        "{name} natively (the guest's checks are wrong?); stderr: {}",
        String::from_utf8_lossy(&native.stderr)
    );
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(
        sbx.stdout_str(),
        native.stdout_str(),
        "{name} ({link:?}) under sbx; stderr: {}",
        String::from_utf8_lossy(&sbx.stderr)
    );
    assert_eq!(sbx.status, 0);
    assert_eq!(native.status, 0);
}

#[test]
fn socketpair_ping_pong_across_fork_and_message_boundaries() {
    same_as_native("sock_pair", Link::Static);
}

#[test]
fn socketpair_dynamic() {
    same_as_native("sock_pair", Link::Dynamic);
}

#[test]
fn listening_socket_by_path_and_abstract_name_with_client_child() {
    same_as_native("sock_listen", Link::Static);
}

#[test]
fn scm_rights_passes_a_pipe_between_processes() {
    same_as_native("sock_rights", Link::Static);
}

#[test]
fn epoll_level_edge_oneshot_timeout_and_eventfd() {
    same_as_native("sock_epoll", Link::Static);
}

#[test]
fn epoll_dynamic() {
    same_as_native("sock_epoll", Link::Dynamic);
}

#[test]
fn flock_and_record_locks_exclude_between_processes() {
    same_as_native("sock_flock", Link::Static);
}

#[test]
fn python_socketpair_send_recv() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: /usr/bin/python3 not installed");
        return;
    }
    let script = "import socket; a,b=socket.socketpair(); a.send(b\"x\"); print(b.recv(1))";
    let r = run_sbx(&["/usr/bin/python3", "-c", script], &Opts::default());
    assert_eq!(
        r.stdout_str(),
        "b'x'\n",
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(r.status, 0);
}

/// Python over the real socket API: a listener and a client thread with a
/// 600 kB stream, `send_fds`/`recv_fds` (SCM_RIGHTS), a recv timeout
/// (poll), and the epoll-based `selectors.DefaultSelector`.
const PY_SOCKETS: &str = r#"import socket, threading, os, array
p = "\0sbx-py-%d" % os.getpid()
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(p); srv.listen(1)
def client():
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(p)
    c.sendall(b"hello " * 100000)
    c.close()
th = threading.Thread(target=client); th.start()
conn, _ = srv.accept()
conn.settimeout(5)
data = b""
while True:
    d = conn.recv(65536)
    if not d: break
    data += d
th.join()
print(len(data), data[:6])
a, b = socket.socketpair()
r, w = os.pipe()
socket.send_fds(a, [b"fd"], [r])
msg, fds, flags, addr = socket.recv_fds(b, 10, 4)
os.write(w, b"via-pipe")
print(msg, os.read(fds[0], 20), a.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
b.settimeout(0.2)
try:
    b.recv(1)
except socket.timeout:
    print("timeout")
import selectors
sel = selectors.DefaultSelector()
sel.register(b, selectors.EVENT_READ)
a.send(b"z")
print([k.fd == b.fileno() for k, e in sel.select(1)])
"#;

#[test]
fn python_unix_server_threads_fd_passing_timeouts_and_epoll_selector() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: /usr/bin/python3 not installed");
        return;
    }
    let argv = ["/usr/bin/python3", "-c", PY_SOCKETS];
    let native = run_native(&argv, &Opts::default());
    assert_eq!(
        native.stdout_str(),
        "600000 b'hello '\nb'fd' b'via-pipe' 1\ntimeout\n[True]\n"
    );
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(
        sbx.stdout_str(),
        native.stdout_str(),
        "stderr: {}",
        String::from_utf8_lossy(&sbx.stderr)
    );
    assert_eq!(sbx.status, 0);
}

#[test]
fn other_families_are_refused_with_eafnosupport() {
    // AF_INET from python: the sandbox has no network family.
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: /usr/bin/python3 not installed");
        return;
    }
    let script = "import socket, errno\ntry:\n    socket.socket(socket.AF_INET)\n    print('created')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])";
    let r = run_sbx(&["/usr/bin/python3", "-c", script], &Opts::default());
    assert_eq!(
        r.stdout_str(),
        "EAFNOSUPPORT\n",
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Runs `sock_ckpt MODE`, checkpoints it 1 s after it blocked (the
/// blocked call is interrupted and rewound), restores it, and returns the
/// restored sandbox's `done` line.
fn block_checkpoint_restore(mode: &str) -> String {
    use checkpoint_util::{path_str, Env};
    const START: Duration = Duration::from_secs(60);
    const STEP: Duration = Duration::from_secs(20);
    let env = Env::new();
    let g = guest("sock_ckpt", Link::Static);
    let mut sb = env.run(mode, &[path_str(&g), mode]);
    sb.wait_for("blocked", START);
    std::thread::sleep(Duration::from_secs(1));
    let img = env.image("img");
    env.checkpoint(mode, &img, &[]);
    let (code, rest) = sb.finish(STEP);
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "no output after the checkpoint: {rest:?}");
    let mut rs = env.restore(&img, &format!("{mode}-restored"));
    let done = rs.wait_for("done", STEP);
    let (code, _) = rs.finish(STEP);
    assert_eq!(code, Some(0), "restored guest exit status");
    done
}

#[test]
fn recvmsg_with_queued_data_and_scm_rights_resumes_after_restore() {
    assert_eq!(
        block_checkpoint_restore("recv"),
        "done n=4 data=pong piped=piped child=0"
    );
}

#[test]
fn accept_resumes_after_restore() {
    assert_eq!(
        block_checkpoint_restore("accept"),
        "done accepted=1 n=2 data=hi child=0"
    );
}

#[test]
fn epoll_wait_resumes_after_restore() {
    assert_eq!(block_checkpoint_restore("epoll"), "done n=1 data=7 count=3");
}

#[test]
fn blocking_flock_resumes_after_restore() {
    assert_eq!(block_checkpoint_restore("flock"), "done busy=1 r=0");
}
