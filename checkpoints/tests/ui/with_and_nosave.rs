use checkpoints::Stateify;

#[derive(Stateify)]
struct Task {
    #[state(nosave, with = "custom")]
    tid: i32,
}

fn main() {}
