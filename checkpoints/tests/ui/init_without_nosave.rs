use checkpoints::Stateify;

fn zero() -> i32 {
    0
}

#[derive(Stateify)]
struct Task {
    #[state(init = "zero")]
    tid: i32,
}

fn main() {}
