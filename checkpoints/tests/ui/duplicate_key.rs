use checkpoints::Stateify;

#[derive(Stateify)]
#[state(after_load = "a", after_load = "b")]
struct Task {
    #[state(nosave)]
    #[state(nosave)]
    tid: i32,
}

fn main() {}
