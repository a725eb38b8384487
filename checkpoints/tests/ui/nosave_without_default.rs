use checkpoints::Stateify;

struct HostFd(i32);

#[derive(Stateify)]
struct Task {
    tid: i32,
    #[state(nosave)]
    fd: HostFd,
}

fn main() {}
