#!/usr/bin/env python3
"""Checkpoint/restore benchmark: sbx vs Debian's runsc (ptrace platform).

A static guest (bench/ckpt_memtouch.c) touches N MiB of incompressible
memory and prints a timestamped TICK every 10 ms. For each size and each
sbx checkpoint variant (none, none --direct, zstd), one run: checkpoint
(stop) time, image size, then one
restore per `--memory` mode (default lazy and eager) with its time to the
first guest instruction (sbx's own figure) and to the first output (TICK
stamp minus host time just before the restore command started).
The same guest runs under `runsc --platform=ptrace --network=none` with an
OCI bundle (run --detach, checkpoint --image-path, restore --detach).

Usage: bench/ckpt_bench.py [--sizes 16,256,1024] [--sbx target/release/sbx]
       [--no-runsc] [--modes lazy,eager] [--out FILE]
Needs root (runsc), gcc, /usr/bin/runsc. One run per cell: figures are
indicative (2 shared cores)."""
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))


class Lines:
    """Collects a child's stdout lines with their arrival times."""

    def __init__(self, stream):
        self.lines, self.cv = [], threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            with self.cv:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cv.notify_all()

    def wait(self, prefix, timeout=300):
        end = time.time() + timeout
        with self.cv:
            seen = 0
            while True:
                for l in self.lines[seen:]:
                    if l.startswith(prefix):
                        return l
                seen = len(self.lines)
                left = end - time.time()
                if left <= 0:
                    raise TimeoutError(f"no {prefix!r} line; got {self.lines[-5:]}")
                self.cv.wait(left)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def first_tick_ms(lines, t0_ns):
    stamp = int(lines.wait("TICK ").split()[2])
    return (stamp - t0_ns) / 1e6


# sbx checkpoint variants: label -> extra `sbx checkpoint` arguments.
VARIANTS = {"none": ["--compression", "none"],
            "none --direct": ["--compression", "none", "--direct"],
            "zstd": ["--compression", "zstd"]}


def bench_sbx(sbx, guest, mib, comp, modes, work):
    env = dict(os.environ, SBX_STATE_DIR=os.path.join(work, "sbx-state"))
    img = os.path.join(work, f"sbx-{mib}-{comp.replace(' ', '')}")
    shutil.rmtree(img, ignore_errors=True)
    run = subprocess.Popen([sbx, "run", "--id", "bench", "--", guest, str(mib)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = Lines(run.stdout)
    out.wait("TICK 1 ")
    t = time.time()
    ck = subprocess.run([sbx, "checkpoint", "bench", "--image", img, "--json"] + VARIANTS[comp],
                        capture_output=True, env=env, check=True)
    ckpt_ms = (time.time() - t) * 1e3
    run.wait(timeout=60)
    stats = json.loads(ck.stdout)
    rows = []
    for mode in modes:
        t0 = time.time_ns()
        rs = subprocess.Popen([sbx, "restore", "--image", img, "--json", "--memory", mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        rout = Lines(rs.stdout)
        fo = first_tick_ms(rout, t0)
        rjson = json.loads(rs.stderr.readline())
        rs.kill()
        rs.wait()
        rows.append(dict(system="sbx", mib=mib, compression=comp, memory=mode, ckpt_ms=ckpt_ms,
                         image_bytes=du(img), restore_first_instr_ms=rjson["time_ms"]["total"],
                         restore_first_output_ms=fo, ckpt_phases=stats["time_ms"],
                         restore_phases=rjson["time_ms"]))
    shutil.rmtree(img, ignore_errors=True)
    return rows


def bench_runsc(guest, mib, work):
    root = os.path.join(work, "runsc-state")
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(rootfs, "anchor"), exist_ok=True)
    for d in ("tmp", "proc", "dev", "sys", "etc", "usr"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy(guest, os.path.join(rootfs, "anchor", "memtouch"))
    bundle = os.path.join(work, f"bundle-{mib}")
    os.makedirs(bundle, exist_ok=True)
    cfg = {
        "ociVersion": "1.0.0",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                    "args": ["/anchor/memtouch", str(mib)], "env": ["PATH=/anchor"], "cwd": "/tmp"},
        "root": {"path": rootfs, "readonly": True},
        "hostname": "bench",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    rs = ["runsc", f"--root={root}", "--network=none", "--platform=ptrace"]
    img = os.path.join(work, f"runsc-img-{mib}")
    shutil.rmtree(img, ignore_errors=True)
    os.makedirs(img)
    cid, rid = f"h7b-{mib}", f"h7r-{mib}"
    # Output through a pipe (runsc writes to a regular file with its own offset).
    run = subprocess.Popen(rs + ["run", "--detach", "--bundle", bundle, cid],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Lines(run.stdout)
    out.wait("TICK 1 ")
    t = time.time()
    subprocess.run(rs + ["checkpoint", f"--image-path={img}", cid], check=True, capture_output=True)
    ckpt_ms = (time.time() - t) * 1e3
    subprocess.run(["runsc", f"--root={root}", "delete", "-force", cid], capture_output=True)
    t0 = time.time_ns()
    res = subprocess.Popen(rs + ["restore", "--detach", "--bundle", bundle, f"--image-path={img}", rid],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rout = Lines(res.stdout)
    fo = first_tick_ms(rout, t0)
    size = du(img)
    for c in (rid,):
        subprocess.run(["runsc", f"--root={root}", "kill", c, "KILL"], capture_output=True)
        time.sleep(0.3)
        subprocess.run(["runsc", f"--root={root}", "delete", "-force", c], capture_output=True)
    shutil.rmtree(img, ignore_errors=True)
    return dict(system="runsc", mib=mib, compression="runsc-default", memory="-", ckpt_ms=ckpt_ms, image_bytes=size,
                restore_first_instr_ms=None, restore_first_output_ms=fo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16,256,1024")
    ap.add_argument("--sbx", default=os.path.join(HERE, "..", "target", "release", "sbx"))
    ap.add_argument("--no-runsc", action="store_true")
    ap.add_argument("--modes", default="lazy,eager", help="sbx restore --memory modes, each restored once")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-bench-")
    guest = os.path.join(work, "memtouch")
    subprocess.run(["gcc", "-O2", "-static", "-o", guest, os.path.join(HERE, "ckpt_memtouch.c")], check=True)
    rows = []
    try:
        for mib in [int(s) for s in a.sizes.split(",")]:
            for comp in VARIANTS:
                for r in bench_sbx(a.sbx, guest, mib, comp, a.modes.split(","), work):
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr)
            if not a.no_runsc:
                rows.append(bench_runsc(guest, mib, work))
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fmt = lambda v: "-" if v is None else f"{v:.0f}"
    print("| MiB | system | compression | restore memory | checkpoint ms | ckpt GB/s | image MiB | restore→1st instr ms | restore→1st output ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gbs = r["mib"] / 1024 / (r["ckpt_ms"] / 1e3)
        print(f"| {r['mib']} | {r['system']} | {r['compression']} | {r['memory']} | {fmt(r['ckpt_ms'])} | {gbs:.2f} | "
              f"{r['image_bytes'] / 2**20:.1f} | {fmt(r['restore_first_instr_ms'])} | {fmt(r['restore_first_output_ms'])} |")
    by = {(r["mib"], r["system"], r["compression"], r["memory"]): r for r in rows}
    modes = a.modes.split(",")
    print()
    print("| MiB | " + " | ".join(f"ckpt {c}" for c in VARIANTS) + " | " +
          " | ".join(f"restore→1st output {c}, {m}" for c in VARIANTS for m in modes) + " |")
    print("|---|" + "---|" * (len(VARIANTS) * (1 + len(modes))))
    for mib in sorted({r["mib"] for r in rows}):
        rc = by.get((mib, "runsc", "runsc-default", "-"))
        if not rc:
            continue
        cells = [f"{by[(mib, 'sbx', c, modes[0])]['ckpt_ms'] / rc['ckpt_ms']:.2f}" for c in VARIANTS]
        cells += [f"{by[(mib, 'sbx', c, m)]['restore_first_output_ms'] / rc['restore_first_output_ms']:.2f}"
                  for c in VARIANTS for m in modes]
        print(f"| {mib} | " + " | ".join(cells) + " |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
