//! C guests compiled at test time, run under sbx (and natively where the
//! output is comparable).

use tests::{guest, run_native, run_sbx, Link, Opts};

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn static_hello_matches_native_output_and_status() {
    let exe = guest("hello", Link::Static);
    let argv = [path(&exe), "7", "two words"];
    let native = run_native(&argv, &Opts::default());
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(sbx.stdout, native.stdout);
    assert_eq!(sbx.status, 7);
    assert_eq!(native.status, 7);
}

#[test]
fn dynamic_hello_matches_native_output_and_status() {
    let exe = guest("hello", Link::Dynamic);
    let argv = [path(&exe), "3"];
    let native = run_native(&argv, &Opts::default());
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(sbx.stdout, native.stdout);
    assert_eq!(sbx.status, 3);
}

fn self_check(name: &str, link: Link, args: &[&str], opts: &Opts) {
    let exe = guest(name, link);
    let mut argv = vec![path(&exe)];
    argv.extend_from_slice(args);
    let r = run_sbx(&argv, opts);
    assert_eq!(
        r.stdout_str(),
        "OK\n",
        "{name} ({link:?}) under sbx; stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(r.status, 0);
}

#[test]
fn argv_envp_and_auxv_are_linux_shaped_static() {
    let opts = Opts {
        env: vec![("SBX_TEST_ENV".into(), "value with spaces".into())],
        ..Default::default()
    };
    self_check("auxv", Link::Static, &["first-arg"], &opts);
}

#[test]
fn argv_envp_and_auxv_are_linux_shaped_dynamic() {
    let opts = Opts {
        env: vec![("SBX_TEST_ENV".into(), "value with spaces".into())],
        ..Default::default()
    };
    self_check("auxv", Link::Dynamic, &["first-arg"], &opts);
}

#[test]
fn bad_pointers_give_efault_and_the_program_continues() {
    self_check("efault", Link::Static, &[], &Opts::default());
}

#[test]
fn null_dereference_dies_with_sigsegv() {
    let exe = guest("segv", Link::Static);
    let r = run_sbx(&[path(&exe)], &Opts::default());
    assert_eq!(r.stdout_str(), "before\n");
    assert_eq!(r.status, 139);
}

#[test]
fn signal_handlers_siginfo_altstack_and_restart_static() {
    self_check("signals", Link::Static, &[], &Opts::default());
}

#[test]
fn signal_handlers_siginfo_altstack_and_restart_dynamic() {
    self_check("signals", Link::Dynamic, &[], &Opts::default());
}

#[test]
fn fork_exec_wait_tree() {
    self_check("forktree", Link::Static, &[], &Opts::default());
}

#[test]
fn fork_exec_wait_tree_dynamic() {
    self_check("forktree", Link::Dynamic, &[], &Opts::default());
}

#[test]
fn pipes_between_processes() {
    self_check("pipes", Link::Static, &[], &Opts::default());
}

#[test]
fn unimplemented_syscalls_return_enosys() {
    let exe = guest("enosys", Link::Static);
    let r = run_sbx(&[path(&exe)], &Opts::default());
    assert_eq!(r.stdout_str(), "-1 1 -1 1\nOK\n");
    assert_eq!(r.status, 0);
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(
        log.contains("landlock_create_ruleset"),
        "unimplemented syscall is logged by name: {log}"
    );
}

/// Random syscalls with hostile arguments never take the sentry down:
/// every child either finishes, dies of a signal, or is killed, and the
/// sandbox keeps working afterwards (the guest checks fork + pipe).
#[test]
fn random_syscalls_do_not_crash_the_sentry() {
    let exe = guest("sysfuzz", Link::Static);
    let r = run_sbx(&[path(&exe), "7", "12"], &Opts::default());
    let log = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.stdout_str(), "OK\n", "stderr: {log}");
    assert_eq!(r.status, 0);
    assert!(!log.contains("panicked"), "sentry panicked: {log}");
}

#[test]
fn sigchld_siginfo_waitid_sleep_restart_and_handler_flags() {
    self_check("signals2", Link::Static, &[], &Opts::default());
}

#[test]
fn interval_timers_and_alarm() {
    self_check("timers", Link::Static, &[], &Opts::default());
}

#[test]
fn pthreads_mutex_condvar_kill_join_fork_exec_static() {
    self_check("threads", Link::Static, &[], &Opts::default());
}

#[test]
fn pthreads_mutex_condvar_kill_join_fork_exec_dynamic() {
    self_check("threads", Link::Dynamic, &[], &Opts::default());
}

#[test]
fn close_range_copy_file_range_sockets_absent_and_limits() {
    self_check("misc", Link::Static, &[], &Opts::default());
}

#[test]
fn eventfd_and_epoll_level_and_edge_triggered() {
    self_check("epoll", Link::Static, &[], &Opts::default());
}
