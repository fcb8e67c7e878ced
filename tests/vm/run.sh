#!/usr/bin/env bash
# Usage: tests/vm/run.sh GUEST-SCRIPT [ARGS...]
# Boots the pinned Debian kernel under QEMU (TCG: no KVM needed) with the initramfs from build.sh
# (run first, cheap when nothing changed), runs GUEST-SCRIPT with ARGS inside the guest and
# exits with the guest script's status.
#
# Inside the guest the host's root directory is / (read-only, virtio-9p), so host paths and
# host-built binaries work unchanged; /run, /tmp and /dev/shm are the guest's own tmpfs (the
# host's /tmp is hidden), HOME=/tmp/home, XDG_RUNTIME_DIR=/run/user/0. The out share is writable
# and has the same path in the guest as on the host: $VSCANOUT_VM_OUT. GUEST-SCRIPT runs directly
# when it is executable, else with bash, in the current directory when the guest can see it.
#
# Environment: VM_TIMEOUT (seconds for the whole boot, default 180; then QEMU is killed and the
# status is 124), VM_OUT (out share, default $VM_BUILD/out, emptied first), VM_MEMORY (MiB,
# 2048), VM_SMP (2), VM_ACCEL (tcg), VM_MODULES (extra module groups, e.g. vgem), VM_BUILD
# (see build.sh), VM_CONSOLE (where the serial console is copied, default $VM_OUT/../console.log),
# VM_GUEST_ENV (NAME=value words exported to the guest script), VM_KERNEL_ARGS and VM_QEMU_ARGS (appended; e.g. VM_KERNEL_ARGS=vscanout.cache=none to see host
# files that change while the VM runs: the host root is cached loosely by default, for speed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
script=$(realpath "$1")
shift
[ -f "$script" ] || { echo "vm run: no such guest script: $script" >&2; exit 2; }
# The guest has its own /tmp; only the repository is carried over from the host's (a CI clone
# may live there).
case "$script" in "$repo"/*) ;; /tmp/*) echo "vm run: the guest has its own /tmp and cannot see $script" >&2; exit 2 ;; esac

# shellcheck source=kernel.env
. "$here/kernel.env"
kver=$VSCANOUT_VM_KERNEL_ABI-amd64
build=$(realpath -m "${VM_BUILD:-$repo/build-vm}")
export VM_BUILD=$build
"$here/build.sh" > /dev/null

out=$(realpath -m "${VM_OUT:-$build/out}")
console=${VM_CONSOLE:-$(dirname "$out")/console.log}
case "$out" in /|/tmp|"$repo"|/work) echo "vm run: refusing to use $out as the out share" >&2; exit 2 ;; esac
rm -rf "$out"
mkdir -p "$out"

# The guest's entry point: environment, working directory, the script and its arguments
# (quoted for bash, so arguments with spaces survive).
{
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	echo 'export HOME=/tmp/home XDG_RUNTIME_DIR=/run/user/0 LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1'
	printf 'export VSCANOUT_VM=1 VSCANOUT_VM_OUT=%q VSCANOUT_ROOT=%q\n' "$out" "$repo"
	for kv in ${VM_GUEST_ENV:-}; do printf 'export %q\n' "$kv"; done
	printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
	echo 'echo "vm: guest script starts at $(cut -d" " -f1 /proc/uptime)s of uptime"'
	if [ -x "$script" ]; then printf '%q' "$script"; else printf '/bin/bash %q' "$script"; fi
	for a in "$@"; do printf ' %q' "$a"; done
	echo
	echo 'rc=$?'
	echo 'echo "vm: guest script ended at $(cut -d" " -f1 /proc/uptime)s of uptime, status $rc"'
	echo 'exit $rc'
} > "$out/entry.sh"

# shellcheck disable=SC2054 # "tcg,thread=multi" is one QEMU argument
case "${VM_ACCEL:-tcg}" in
tcg) accel=(-accel tcg,thread=multi -cpu max) ;;
kvm) accel=(-accel kvm -cpu host) ;;
*) echo "vm run: VM_ACCEL must be tcg or kvm" >&2; exit 2 ;;
esac
# tsc=reliable: with two vCPUs the guest finds the TSCs "unsynchronized" and falls back to the
# HPET, which halves the speed of every clock read under TCG.
append="console=ttyS0 quiet loglevel=3 panic=-1 tsc=reliable vscanout.out=$out vscanout.repo=$repo ${VM_KERNEL_ARGS:-}"
[ -z "${VM_MODULES:-}" ] || append="$append vscanout.modules=$VM_MODULES"

kernel=$build/vmlinux # PVH entry: no decompression at boot (see build.sh)
[ -f "$kernel" ] || kernel=/boot/vmlinuz-$kver

read -r -a extra <<< "${VM_QEMU_ARGS:-}"
timeout_s=${VM_TIMEOUT:-180}
t0=$(date +%s%N)
set +e
# -no-reboot + panic=-1: a guest kernel panic ends QEMU at once instead of hanging; timeout(1)
# covers a guest that hangs in user space (then QEMU gets SIGTERM, SIGKILL 5 s later).
timeout -k 5 "$timeout_s" qemu-system-x86_64 "${accel[@]}" -machine q35 \
	-smp "${VM_SMP:-2}" -m "${VM_MEMORY:-2048}" \
	-nodefaults -no-user-config -display none -no-reboot -serial stdio -monitor none \
	-kernel "$kernel" -initrd "$build/initramfs.cpio.gz" -append "$append" \
	-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	-fsdev local,id=vmout,path="$out",security_model=none \
	-device virtio-9p-pci,fsdev=vmout,mount_tag=vmout \
	"${extra[@]}" < /dev/null 2>&1 | tee "$console"
qemu_rc=${PIPESTATUS[0]}
set -e
wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "vm run: TIMEOUT after ${timeout_s}s (VM_TIMEOUT); QEMU killed" >&2
	rc=124
elif [ -f "$out/rc" ]; then
	rc=$(cat "$out/rc")
else
	echo "vm run: the guest reported no exit status (QEMU exit $qemu_rc); console: $console" >&2
	rc=125
fi
printf 'vm run: %s: status %s, QEMU wall time %d.%03d s\n' "$(basename "$script")" "$rc" \
	$((wall_ms / 1000)) $((wall_ms % 1000))
exit "$rc"
