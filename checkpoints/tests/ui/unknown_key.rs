use checkpoints::Stateify;

#[derive(Stateify)]
#[state(after_save = "hook")]
struct Task {
    #[state(skip)]
    tid: i32,
}

fn main() {}
