#!/usr/bin/env python3
"""Syscall and start-up benchmark: native vs sbx vs gVisor (runsc, ptrace).

Measures, each as a median over RUNS runs interleaved round by round so all
contenders see the same background load:
  * ns per getppid syscall (guests/getppid_loop.c, timed inside the guest);
  * wall time of `/bin/true` (static busybox `true`) from start to exit;
  * wall time of `busybox sh -c 'seq 1 100000 | md5sum'`.
Prints a Markdown table of medians and ratios. runsc is used when
/usr/bin/runsc exists (Debian package `runsc`), as
`runsc --platform=ptrace --network=none do CMD`.

Usage: bench/run_syscall_bench.py [--runs N] [--calls N] [--sbx PATH]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_guest(out_dir):
    exe = os.path.join(out_dir, "getppid_loop")
    subprocess.run(["gcc", "-O2", "-static", "-o", exe,
                    os.path.join(HERE, "guests", "getppid_loop.c")], check=True)
    return exe


def wall_ms(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1e3
    if r.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {r.returncode}: {r.stderr.decode()[-400:]}")
    return dt, r.stdout.decode()


def ns_per_call(cmd):
    _, out = wall_ms(cmd)
    m = re.search(r"ns_per_call=([0-9.]+)", out)
    if not m:
        raise RuntimeError(f"no ns_per_call in output of {cmd!r}: {out!r}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--sbx", default=os.path.join(ROOT, "target", "release", "sbx"))
    args = ap.parse_args()

    busybox = shutil.which("busybox")
    runsc = "/usr/bin/runsc" if os.path.exists("/usr/bin/runsc") else None
    tmp = tempfile.mkdtemp(prefix="sbx-bench-")
    guest = build_guest(tmp)
    runsc_root = os.path.join(tmp, "runsc-state")
    os.makedirs(runsc_root)

    contenders = {"native": []}
    contenders["sbx"] = [args.sbx, "run", "--"]
    if runsc:
        contenders["runsc"] = [runsc, f"--root={runsc_root}", "--platform=ptrace",
                               "--network=none", "do"]

    workloads = {
        "getppid ns/call": ("ns", [guest, str(args.calls)]),
        "/bin/true start-to-exit ms": ("ms", [busybox, "true"]),
        "sh -c 'seq 1 100000 | md5sum' ms": ("ms", [busybox, "sh", "-c", "seq 1 100000 | md5sum"]),
    }
    results = {w: {c: [] for c in contenders} for w in workloads}
    for _ in range(args.runs):
        for w, (kind, cmd) in workloads.items():
            for c, prefix in contenders.items():
                full = prefix + cmd
                if kind == "ns":
                    results[w][c].append(ns_per_call(full))
                else:
                    results[w][c].append(wall_ms(full)[0])

    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cores, "
          f"kernel {os.uname().release}, {args.runs} runs each, medians (min-max)\n")
    head = "| workload | " + " | ".join(contenders) + " | sbx/native |"
    if runsc:
        head += " sbx/runsc |"
    print(head)
    print("|" + "---|" * (len(contenders) + 2 + (1 if runsc else 0)))
    for w in workloads:
        med = {c: statistics.median(v) for c, v in results[w].items()}
        cells = [f"{med[c]:.1f} ({min(v):.1f}-{max(v):.1f})" for c, v in results[w].items()]
        row = f"| {w} | " + " | ".join(cells) + f" | {med['sbx'] / med['native']:.1f}x |"
        if runsc:
            row += f" {med['sbx'] / med['runsc']:.2f}x |"
        print(row)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
