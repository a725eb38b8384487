#!/usr/bin/env bash
# Installs what sbx's build, tests and benchmarks need on a Debian machine.
# Idempotent; needs root (or sudo) for apt-get. Safe to run repeatedly.
set -euo pipefail

need=()
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# sqlite3's WAL mode is a test of shared writable file mappings.
[ -x /usr/bin/sqlite3 ] || need+=(sqlite3)
# Static glibc for the C guests built with `gcc -static`.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)

if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

# busybox-static installs /bin/busybox; some Debian releases ship it only
# as /usr/bin/busybox. The tests use `busybox` from PATH.
command -v busybox >/dev/null
