use checkpoints::Stateify;

#[derive(Stateify)]
#[state(nosave)]
struct Task {
    tid: i32,
}

#[derive(Stateify)]
enum State {
    #[state(nosave)]
    Running,
}

fn main() {}
