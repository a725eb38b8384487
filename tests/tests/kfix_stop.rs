//! Blocking calls stopped by SIGSTOP and continued by SIGCONT (no
//! handler) behave as on Linux (signal(7), "Interruption of system calls
//! and library functions by stop signals"): `epoll_wait`, `epoll_pwait`,
//! `epoll_pwait2` (timed or not) and `sigtimedwait` fail with EINTR right
//! after the continue; `poll`, `select`, `nanosleep`, a timed
//! `FUTEX_WAIT` and a pipe `read` carry on, the timed ones ending at
//! their original timeout. A caught signal (`SA_RESTART`) also ends
//! `epoll_wait` with EINTR; a blocked one does not end a `FUTEX_WAIT`
//! (its wake-up of the task is not a futex wake). Only a checkpoint pause
//! restarts an epoll wait silently (`epoll_restart.rs`). Guest:
//! `tests/guests/kfix_stop.c`, run natively and under sbx with the same
//! output expected.

use tests::{guest, run_native, run_sbx, Link, Opts};

/// Linux's behaviour, one line per call (see the guest for the fields).
const EXPECTED: &str = "\
epoll_wait stop=in r=-1 errno=4 when=cont usr1=0
epoll_pwait stop=in r=-1 errno=4 when=cont usr1=0
epoll_pwait2 stop=in r=-1 errno=4 when=cont usr1=0
epoll_wait_untimed stop=in r=-1 errno=4 when=cont usr1=0
sigtimedwait stop=in r=-1 errno=4 when=cont usr1=0
poll stop=in r=0 errno=0 when=timeout usr1=0
select stop=in r=0 errno=0 when=timeout usr1=0
nanosleep stop=in r=0 errno=0 when=timeout usr1=0
futex_wait stop=in r=-1 errno=110 when=timeout usr1=0
read stop=in r=1 errno=0 when=data usr1=0
epoll_wait_handler stop=in r=-1 errno=4 when=cont usr1=1
futex_wait_blocked_signal stop=in r=-1 errno=110 when=timeout usr1=0
worker exit 0
";

#[test]
fn stop_and_continue_interrupt_exactly_the_calls_linux_interrupts() {
    let exe = guest("kfix_stop", Link::Static);
    let argv = [exe.to_str().expect("utf-8 path")];

    // Both at once: the guest mostly sleeps (about 20 s).
    let (sandboxed, native) = std::thread::scope(|s| {
        let sbx = s.spawn(|| run_sbx(&argv, &Opts::default()));
        let native = run_native(&argv, &Opts::default());
        (sbx.join().expect("sbx run thread"), native)
    });

    let ctx = format!(
        "sbx stderr:\n{}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    assert_eq!(native.stdout_str(), EXPECTED, "native run");
    assert_eq!(sandboxed.stdout_str(), EXPECTED, "{ctx}");
    assert_eq!(sandboxed.status, 0, "{ctx}");
}
