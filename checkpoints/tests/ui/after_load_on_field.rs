use checkpoints::Stateify;

#[derive(Stateify)]
struct Task {
    #[state(after_load = "rebuild")]
    tid: i32,
}

fn main() {}
