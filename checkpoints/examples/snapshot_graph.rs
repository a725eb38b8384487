//! Builds a small kernel-like state graph (PID table, thread groups with
//! `Weak` leader/parent pointers, tasks shared between the two, a `nosave`
//! interrupt channel rebuilt by `after_load`), saves it to a file, reloads
//! it and checks the result. Exits non-zero if the round trip is wrong.
//!
//! `cargo run -p checkpoints --example snapshot_graph [PATH]`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};

use checkpoints::state;
use checkpoints::Stateify;

/// Hooks run during the load (checked against the loader's report).
static HOOKS: AtomicUsize = AtomicUsize::new(0);

#[derive(Stateify)]
#[state(after_load = "after_load")]
struct Task {
    tid: i32,
    comm: String,
    thread_group: Weak<Mutex<ThreadGroup>>,
    /// Host-side wakeup channel: not saved; `after_load` makes a new one.
    #[state(nosave)]
    interrupt: Mutex<Option<(Sender<()>, Receiver<()>)>>,
}

impl Task {
    fn after_load(&self) {
        *self.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Some(mpsc::channel());
        HOOKS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Stateify)]
struct ThreadGroup {
    tgid: i32,
    leader: Weak<Mutex<Task>>,
    parent: Weak<Mutex<ThreadGroup>>,
    tasks: Vec<Arc<Mutex<Task>>>,
}

#[derive(Stateify)]
struct Kernel {
    pid_table: BTreeMap<i32, Arc<Mutex<Task>>>,
    thread_groups: BTreeMap<i32, Arc<Mutex<ThreadGroup>>>,
    boot_id: [u8; 16],
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `processes` thread groups of `threads` tasks each; process n's parent is
/// process n / 2.
fn build(processes: i32, threads: i32) -> Kernel {
    let mut k = Kernel {
        pid_table: BTreeMap::new(),
        thread_groups: BTreeMap::new(),
        boot_id: *b"sbx-example-boot",
    };
    let mut next_tid = 1;
    for p in 0..processes {
        let parent = if p == 0 {
            Weak::new()
        } else {
            Arc::downgrade(&k.thread_groups[&(p / 2 * threads + 1)])
        };
        let tgid = next_tid;
        let tg = Arc::new(Mutex::new(ThreadGroup {
            tgid,
            leader: Weak::new(),
            parent,
            tasks: vec![],
        }));
        for t in 0..threads {
            let task = Arc::new(Mutex::new(Task {
                tid: next_tid,
                comm: format!("proc{p}-thr{t}"),
                thread_group: Arc::downgrade(&tg),
                interrupt: Mutex::new(Some(mpsc::channel())),
            }));
            if t == 0 {
                lock(&tg).leader = Arc::downgrade(&task);
            }
            lock(&tg).tasks.push(task.clone());
            k.pid_table.insert(next_tid, task);
            next_tid += 1;
        }
        k.thread_groups.insert(tgid, tg);
    }
    k
}

/// Every check the round trip must pass; returns the first failure.
fn verify(original: &Kernel, back: &Kernel) -> Result<usize, String> {
    if back.pid_table.len() != original.pid_table.len() || back.boot_id != original.boot_id {
        return Err("PID table or boot id differs".into());
    }
    let mut shared = 0;
    for (tgid, tg) in &back.thread_groups {
        let g = lock(tg);
        for task in &g.tasks {
            let tid = lock(task).tid;
            if !Arc::ptr_eq(task, &back.pid_table[&tid]) {
                return Err(format!(
                    "task {tid} is not shared between its thread group and the PID table"
                ));
            }
            shared += 1;
            let back_ptr = lock(task)
                .thread_group
                .upgrade()
                .ok_or(format!("task {tid} lost its thread group"))?;
            if !Arc::ptr_eq(&back_ptr, tg) {
                return Err(format!("task {tid} points at the wrong thread group"));
            }
            if lock(&lock(task).interrupt).is_none() {
                return Err(format!("task {tid}'s interrupt channel was not rebuilt"));
            }
        }
        let leader = g
            .leader
            .upgrade()
            .ok_or(format!("thread group {tgid} lost its leader"))?;
        if lock(&leader).tid != *tgid {
            return Err(format!("thread group {tgid} has the wrong leader"));
        }
        let had_parent = lock(&original.thread_groups[tgid])
            .parent
            .upgrade()
            .map(|p| lock(&p).tgid);
        let has_parent = g.parent.upgrade().map(|p| lock(&p).tgid);
        if had_parent != has_parent {
            return Err(format!(
                "thread group {tgid}: parent {had_parent:?} became {has_parent:?}"
            ));
        }
    }
    Ok(shared)
}

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("sbx-snapshot-graph-{}.state", std::process::id()))
        });
    let kernel = build(8, 3);
    let saved = match state::save(&kernel) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("save failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&path, &saved.bytes) {
        eprintln!("writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!(
        "saved {} shared objects, {} types (schema {:#018x}) in {} bytes to {}",
        saved.objects,
        saved.types.len(),
        saved.root_fingerprint,
        saved.bytes.len(),
        path.display()
    );
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("reading {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let (back, report) = match state::load_with_report::<Kernel>(&bytes) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("load failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::remove_file(&path);
    println!(
        "loaded {} objects, {} after_load hooks run",
        report.objects, report.hooks_run
    );
    let hooks = HOOKS.load(Ordering::SeqCst);
    if report.hooks_run != kernel.pid_table.len() || hooks != report.hooks_run {
        eprintln!(
            "expected {} hooks, report says {}, hooks counted {hooks}",
            kernel.pid_table.len(),
            report.hooks_run
        );
        return ExitCode::FAILURE;
    }
    match verify(&kernel, &back) {
        Ok(shared) => {
            println!("verified: {shared} tasks shared with their thread groups, all Weak pointers restored, channels rebuilt");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("round trip wrong: {e}");
            ExitCode::FAILURE
        }
    }
}
