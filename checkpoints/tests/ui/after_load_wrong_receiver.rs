use checkpoints::Stateify;

#[derive(Stateify)]
#[state(after_load = "rebuild")]
struct Task {
    tid: i32,
}

impl Task {
    fn rebuild(&mut self) {
        self.tid = 0;
    }
}

fn main() {}
