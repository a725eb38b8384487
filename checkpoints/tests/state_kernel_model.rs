//! A model of the sentry kernel's shapes (after gVisor's `Kernel`,
//! `TaskSet`, `ThreadGroup`, `Task`): a PID table sharing tasks with their
//! thread groups, `Weak` back-pointers to the leader and the parent, and
//! host-side fields that are `nosave` and rebuilt by `after_load` hooks
//! (gVisor's Task keeps `interruptChan`, `goroutineStopped`, `futexWaiter`
//! out of the image and rebuilds them in `afterLoad`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};

use checkpoints::state;
use checkpoints::Stateify;

thread_local! {
    /// Hooks run on the loading thread; each test thread has its own log.
    static HOOK_LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(entry: String) {
    HOOK_LOG.with(|l| l.borrow_mut().push(entry));
}

fn take_log() -> Vec<String> {
    HOOK_LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Host identity of a task's stub: meaningless after restore.
#[derive(Default)]
struct HostStub {
    marker: [u8; 32],
}

/// A distinctive pattern held only in `nosave` fields.
const NOSAVE_MARKER: [u8; 32] = [0x5A; 32];
/// A distinctive pattern held in a saved field (control for the byte scan).
const SAVED_MARKER: [u8; 32] = [0xC3; 32];

#[derive(Stateify)]
#[state(after_load = "after_load")]
struct Task {
    tid: i32,
    /// Saved registers (any saved bytes).
    regs: [u8; 32],
    thread_group: Weak<Mutex<ThreadGroup>>,
    /// Host stub: `nosave`, a new stub is forked on restore.
    #[state(nosave)]
    stub: HostStub,
    /// Interrupt channel (gVisor `interruptChan`): `nosave`, rebuilt by
    /// `after_load`.
    #[state(nosave)]
    interrupt: Mutex<Option<(Sender<()>, Receiver<()>)>>,
    /// Stop notification (gVisor `goroutineStopped`): `nosave`, a fresh
    /// condvar is correct. (Never waited on in this model.)
    #[allow(dead_code)]
    #[state(nosave)]
    stopped: Condvar,
}

impl Task {
    fn new(tid: i32, tg: &Arc<Mutex<ThreadGroup>>) -> Arc<Mutex<Task>> {
        Arc::new(Mutex::new(Task {
            tid,
            regs: SAVED_MARKER,
            thread_group: Arc::downgrade(tg),
            stub: HostStub {
                marker: NOSAVE_MARKER,
            },
            interrupt: Mutex::new(Some(mpsc::channel())),
            stopped: Condvar::new(),
        }))
    }

    fn after_load(&self) {
        *self.interrupt.lock().expect("unpoisoned") = Some(mpsc::channel());
        log(format!("task {}", self.tid));
    }
}

#[derive(Stateify)]
#[state(after_load = "after_load")]
struct ThreadGroup {
    tgid: i32,
    leader: Weak<Mutex<Task>>,
    parent: Weak<Mutex<ThreadGroup>>,
    tasks: Vec<Arc<Mutex<Task>>>,
}

impl ThreadGroup {
    fn after_load(&self) {
        log(format!("tg {}", self.tgid));
    }
}

#[derive(Stateify)]
#[state(after_load = "after_load")]
struct Kernel {
    /// The PID table (gVisor `TaskSet.Root.tids`).
    pid_table: BTreeMap<i32, Arc<Mutex<Task>>>,
    thread_groups: BTreeMap<i32, Arc<Mutex<ThreadGroup>>>,
}

impl Kernel {
    fn after_load(&self) {
        log("kernel".to_string());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("unpoisoned")
}

/// init (tg 1: tasks 1 and 2) and its child process (tg 3: task 3).
fn build_kernel() -> Kernel {
    let tg1 = Arc::new(Mutex::new(ThreadGroup {
        tgid: 1,
        leader: Weak::new(),
        parent: Weak::new(),
        tasks: vec![],
    }));
    let tg3 = Arc::new(Mutex::new(ThreadGroup {
        tgid: 3,
        leader: Weak::new(),
        parent: Arc::downgrade(&tg1),
        tasks: vec![],
    }));
    let (t1, t2, t3) = (Task::new(1, &tg1), Task::new(2, &tg1), Task::new(3, &tg3));
    {
        let mut g = lock(&tg1);
        g.leader = Arc::downgrade(&t1);
        g.tasks = vec![t1.clone(), t2.clone()];
    }
    {
        let mut g = lock(&tg3);
        g.leader = Arc::downgrade(&t3);
        g.tasks = vec![t3.clone()];
    }
    Kernel {
        pid_table: [(1, t1), (2, t2), (3, t3)].into(),
        thread_groups: [(1, tg1), (3, tg3)].into(),
    }
}

fn round_trip() -> (state::SavedState, Kernel, state::LoadReport) {
    let saved = state::save(&build_kernel()).expect("save");
    take_log();
    let (k, report) = state::load_with_report::<Kernel>(&saved).expect("load");
    (saved, k, report)
}

#[test]
fn tasks_are_shared_between_pid_table_and_thread_group() {
    let (saved, k, _) = round_trip();
    assert_eq!(saved.objects, 5);
    let tg1 = lock(&k.thread_groups[&1]);
    assert!(Arc::ptr_eq(&tg1.tasks[0], &k.pid_table[&1]));
    assert!(Arc::ptr_eq(&tg1.tasks[1], &k.pid_table[&2]));
    assert!(Arc::ptr_eq(
        &lock(&k.thread_groups[&3]).tasks[0],
        &k.pid_table[&3]
    ));
}

#[test]
fn weak_back_pointers_point_at_the_restored_objects() {
    let (_, k, _) = round_trip();
    let tg3 = lock(&k.thread_groups[&3]);
    let leader = tg3.leader.upgrade().expect("leader alive");
    assert!(Arc::ptr_eq(&leader, &k.pid_table[&3]));
    let parent = tg3.parent.upgrade().expect("parent alive");
    assert!(Arc::ptr_eq(&parent, &k.thread_groups[&1]));
    let t2_group = lock(&k.pid_table[&2])
        .thread_group
        .upgrade()
        .expect("tg alive");
    assert!(Arc::ptr_eq(&t2_group, &k.thread_groups[&1]));
    assert!(lock(&k.thread_groups[&1]).parent.upgrade().is_none());
}

#[test]
fn hooks_run_once_each_dependencies_first() {
    let (_, _k, report) = round_trip();
    // Objects in first-reached order: t1, t2, t3 (PID table), tg1, tg3.
    // Post-order over references from t1: t1 → tg1 → {t1 (cycle: skipped),
    // t2 → tg1 (cycle: skipped)}; then t3 → tg3 → {t3 (skipped), tg1
    // (done)}. The root value runs last.
    assert_eq!(
        take_log(),
        ["task 2", "tg 1", "task 1", "tg 3", "task 3", "kernel"]
    );
    assert_eq!(report.hooks_run, 6);
}

#[test]
fn after_load_rebuilds_the_nosave_channel() {
    let (_, k, _) = round_trip();
    let task = lock(&k.pid_table[&2]);
    let chan = lock(&task.interrupt);
    let (tx, rx) = chan.as_ref().expect("rebuilt by after_load");
    tx.send(()).expect("receiver alive");
    assert_eq!(rx.try_recv(), Ok(()));
}

#[test]
fn nosave_fields_are_not_written() {
    let (saved, k, _) = round_trip();
    let contains = |pat: &[u8]| saved.bytes.windows(pat.len()).any(|w| w == pat);
    assert!(contains(&SAVED_MARKER));
    assert!(!contains(&NOSAVE_MARKER));
    assert_eq!(lock(&k.pid_table[&1]).stub.marker, [0; 32]);
}

#[test]
fn schema_table_lists_every_kernel_type_in_walk_order() {
    let (saved, _, _) = round_trip();
    let names: Vec<&str> = saved
        .types
        .iter()
        .map(|t| t.name.rsplit("::").next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Kernel", "Task", "ThreadGroup"]);
}
