#!/usr/bin/env bash
# Usage: bench/vm-import-bench.sh [IMPORT-BENCH ARGS...]   (e.g. --seconds 2 --size 1080p)
# Runs the import bench (vscanout_import_bench) inside the project's test VM (tests/vm: Debian's
# kernel under QEMU TCG), where /dev/udmabuf exists (VM_MODULES=udmabuf), so the dma-buf rows run
# with real dma-bufs. The VM sees the host's root read-only: the host's binary runs there as it is.
#
# Environment: BENCH_BIN (default build/bench/vscanout_import_bench; build it first with
# `ninja -C build bench/vscanout_import_bench`; not under /tmp, which the guest cannot see), and
# tests/vm/run.sh's: VM_TIMEOUT (default here 600), VM_MEMORY (default here 3072), VM_SMP, VM_OUT
# (default build-vm/out-import-bench; console: VM_OUT.console.log), VM_BUILD.
#
# TCG emulates every instruction: absolute times in the VM are many times the host's. Only the
# ratios within one run (each case against the baseline copy of that run) mean anything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "${VSCANOUT_VM:-}" = 1 ]; then # in the guest (run.sh's entry sets VSCANOUT_VM=1)
	bin=$1
	shift
	udmabuf=no
	[ -c /dev/udmabuf ] && udmabuf=yes
	echo "== guest: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), /dev/udmabuf: $udmabuf"
	echo "== NOTE: QEMU TCG (no KVM) slows everything; only ratios within this run count (x base)"
	"$bin" "$@"
	exit
fi

bin=$(realpath -m "${BENCH_BIN:-$repo/build/bench/vscanout_import_bench}")
if [ ! -x "$bin" ]; then
	echo "vm import bench: $bin is missing: build it first (ninja -C build bench/vscanout_import_bench)," >&2
	echo "or name another build's binary with BENCH_BIN" >&2
	exit 2
fi
case "$bin" in /tmp/*) echo "vm import bench: $bin: the guest cannot see the host's /tmp" >&2; exit 2 ;; esac
command -v qemu-system-x86_64 > /dev/null ||
	{ echo "vm import bench: qemu-system-x86_64 is missing: run tests/vm/setup.sh (or scripts/setup.sh)" >&2; exit 2; }

export VM_MODULES=${VM_MODULES:-udmabuf}
export VM_OUT=${VM_OUT:-${VM_BUILD:-$repo/build-vm}/out-import-bench}
export VM_CONSOLE=${VM_CONSOLE:-$VM_OUT.console.log}
export VM_TIMEOUT=${VM_TIMEOUT:-600}
export VM_MEMORY=${VM_MEMORY:-3072}
echo "vm import bench: $bin in the test VM (QEMU TCG: absolute times are far above the host's;"
echo "only the ratios within the run, each case against its baseline copy, count)"
exec "$repo/tests/vm/run.sh" "$here/vm-import-bench.sh" "$bin" "$@"
