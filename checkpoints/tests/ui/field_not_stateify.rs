use checkpoints::Stateify;

struct Opaque;

#[derive(Stateify)]
struct Task {
    tid: i32,
    opaque: Opaque,
}

fn main() {}
