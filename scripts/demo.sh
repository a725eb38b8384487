#!/usr/bin/env bash
# The main job, end to end: run a busybox shell loop in a sandbox,
# checkpoint it mid-run to an image, and restore the image: the counter
# carries on where it stopped. Usage: scripts/demo.sh [path/to/sbx]
set -euo pipefail
SBX=${1:-target/release/sbx}
work=$(mktemp -d /tmp/sbx-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SBX_STATE_DIR=$work/state

echo "== sbx run: a counter that prints every 200 ms"
"$SBX" run --id demo -- busybox sh -c \
    'i=0; while [ $i -lt 20 ]; do echo "tick $i (pid $$)"; i=$((i+1)); sleep 0.2; done' &
run_pid=$!
sleep 1.3

echo "== sbx list"
"$SBX" list

echo "== sbx checkpoint demo --image $work/image"
"$SBX" checkpoint demo --image "$work/image" --json
wait "$run_pid" || true
ls -l "$work/image"

echo "== sbx restore --image $work/image   (continues from the next tick)"
"$SBX" restore --image "$work/image" --id demo-restored
