#!/usr/bin/env bash
# The kiosk (DRM/KMS) end-to-end test from the host: installs what is missing (setup.sh), rebuilds
# vscanout (ninja -C build src/vscanout), builds the VM (build.sh), boots it with QEMU's virtio-vga
# (two outputs; the guest's virtio_gpu KMS driver, module group `kms`) and runs kiosk_checks.py in
# the guest: vscanout on wlroots' DRM backend with the sim source, checked from inside (debugfs
# atomic state, --stats) while kiosk_host.py checks from outside (QMP screendump of each head,
# QEMU's trace of the cursor and scanout commands). The guest also loads udmabuf (module group
# `udmabuf`, built from the kernel's source by build.sh) for the sim's dmabuf=on run. See
# kiosk_checks.py for the phases.
#
# Prints every check's `RESULT: PASS|FAIL <check>: <reason>` line (the guest's through the
# console as they happen, then the host's from kiosk_host.py), the time of each step, and last a
# line CI can count:
#   kiosk vm: N passed, M failed
# Exits 0 when every check passed, 1 when one failed, 124 when the VM ran past VM_TIMEOUT.
#
# Environment: VM_TIMEOUT (seconds for the boot and the whole guest run, default 120), the other
# run.sh/build.sh variables (VM_BUILD, VM_OUT, VM_KERNEL_ARGS and VM_QEMU_ARGS are appended to
# this test's own), VSCANOUT_BIN (test this binary instead of build/src/vscanout, which is then not
# rebuilt; it must lie outside /tmp, which the guest cannot see). vscanout's logs and stats, the
# guest's dmesg, DRM states and screendumps of failed checks, the host log and QEMU's trace land
# in the out share (VM_OUT, default build-vm/out-kiosk; console: VM_OUT.console.log).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
now() { date +%s%N; }
secs() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((d / 1000)) $((d % 1000)); }

passed=0 failed=0
report() {
	echo "kiosk vm: $passed passed, $failed failed"
}
host_fail() { # CHECK REASON: a failure before or around the guest run
	echo "RESULT: FAIL $1: $2"
	failed=$((failed + 1))
}

t0=$(now)
t=$t0
if ! "$here/setup.sh"; then
	host_fail "host setup" "tests/vm/setup.sh failed"
	report
	exit 1
fi
echo "kiosk-test: setup $(secs "$t")"

# vscanout: another engineer may be building in the same tree; a concurrent ninja can fail or
# leave the binary missing for a moment, so retry a few times.
t=$(now)
bin=${VSCANOUT_BIN:-$repo/build/src/vscanout}
bin=$(realpath -m "$bin")
case "$bin" in "$repo"/*) ;; /tmp/*) host_fail "vscanout binary" "$bin: the guest cannot see the host's /tmp"; report; exit 2 ;; esac
if [ -z "${VSCANOUT_BIN:-}" ]; then
	if [ -f "$repo/build/build.ninja" ]; then
		ok=""
		for try in 1 2 3 4 5; do
			if ninja -C "$repo/build" src/vscanout > /dev/null && [ -x "$bin" ]; then ok=1; break; fi
			echo "kiosk-test: ninja or the binary failed (try $try); retrying" >&2
			sleep 3
		done
		[ -n "$ok" ] || { host_fail "build vscanout" "ninja -C build src/vscanout failed"; report; exit 1; }
	else
		if ! { "$repo/scripts/setup.sh" && "$repo/scripts/build.sh" "$repo/build" > /dev/null; }; then
			host_fail "build vscanout" "scripts/build.sh failed"
			report
			exit 1
		fi
	fi
fi
for _ in $(seq 50); do [ -x "$bin" ] && break; sleep 0.2; done
[ -x "$bin" ] || { host_fail "build vscanout" "$bin is missing"; report; exit 1; }
echo "kiosk-test: vscanout build $(secs "$t")"

t=$(now)
if ! "$here/build.sh"; then
	host_fail "vm build" "tests/vm/build.sh failed"
	report
	exit 1
fi
echo "kiosk-test: vm build $(secs "$t")"

# Its own out share and console log, so another VM test can run beside it.
export VM_OUT=${VM_OUT:-${VM_BUILD:-$repo/build-vm}/out-kiosk}
export VM_CONSOLE=${VM_CONSOLE:-$VM_OUT.console.log}
timeout_s=${VM_TIMEOUT:-120}
work=$(mktemp -d /tmp/vscanout-kiosk.XXXXXX) # the QMP socket, QEMU's trace, the logs (host only)
log=$work/console.log
hostlog=$work/host.log
hpid=""
cleanup() {
	if [ -n "$hpid" ] && kill -0 "$hpid" 2> /dev/null; then kill "$hpid" 2> /dev/null; fi
	rm -rf "$work"
}
trap cleanup EXIT

# virtio-vga with two outputs. edid=off: with QEMU's EDID the second output (not enabled by any
# display) offers no preferred mode and drops its EDID's preferred 1280x800 (virtio_gpu's
# mode_valid keeps a preferred mode only if it is 1024x768 or the output's size); without EDID
# both connectors prefer 1024x768 and list 1280x800. video=Virtual-2:...e forces Virtual-2 on
# (QEMU reports it disabled, so it is disconnected otherwise).
qemu_args="-device virtio-vga,id=vga0,max_outputs=2,xres=1024,yres=768,edid=off"
qemu_args+=" -qmp unix:$work/qmp.sock,server=on,wait=off"
qemu_args+=" -trace virtio_gpu_update_cursor -trace virtio_gpu_cmd_set_scanout -trace virtio_gpu_cmd_res_flush"
qemu_args+=" -D $work/trace.log ${VM_QEMU_ARGS:-}"

t=$(now)
# The host helper's lines are printed after the run (the guest echoes the host's verdicts as
# they come, as "host: PASS|FAIL ..." lines that are not counted twice).
/usr/bin/python3 -u "$here/kiosk_host.py" --qmp "$work/qmp.sock" --trace "$work/trace.log" --out "$VM_OUT" \
	--deadline $((timeout_s + 60)) > "$hostlog" 2>&1 &
hpid=$!
# The default binary is not named on the command line: a `pkill -f build/src/vscanout` elsewhere
# on the host (another test's clean-up) would otherwise end run.sh in the middle of the run.
guest_args=()
[ -z "${VSCANOUT_BIN:-}" ] || guest_args=(--bin "$bin")
VM_TIMEOUT=$timeout_s VM_MODULES=kms,udmabuf VM_KERNEL_ARGS="video=Virtual-2:1280x800e ${VM_KERNEL_ARGS:-}" \
	VM_QEMU_ARGS="$qemu_args" "$here/run.sh" "$here/kiosk_checks.py" "${guest_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# QEMU has exited: the helper sees the QMP socket close and ends; give it a few seconds.
for _ in $(seq 100); do kill -0 "$hpid" 2> /dev/null || break; sleep 0.1; done
if kill -0 "$hpid" 2> /dev/null; then
	kill "$hpid" 2> /dev/null
	host_fail "the host helper ended with QEMU" "kiosk_host.py still ran 10 s after QEMU exited; killed"
fi
wait "$hpid" 2> /dev/null
hpid=""
echo "kiosk-test: the host side (kiosk_host.py: QMP screendumps, QEMU's trace):"
cat "$hostlog"
cp "$work/trace.log" "$VM_OUT/qemu-trace.log" 2> /dev/null
cp "$hostlog" "$VM_OUT/host.log" 2> /dev/null

tr -d '\r' < "$log" > "$log.clean" && mv "$log.clean" "$log"
passed=$(( $(grep -c '^RESULT: PASS' "$log") + $(grep -c '^RESULT: PASS' "$hostlog") ))
failed=$(( failed + $(grep -c '^RESULT: FAIL' "$log") + $(grep -c '^RESULT: FAIL' "$hostlog") ))
if [ "$rc" -gt 128 ] && [ "$rc" != 137 ] && ! grep -q '^vm run: ' "$log"; then
	guest_rc=$(cat "$VM_OUT/rc" 2>/dev/null || echo none)
	host_fail "run.sh ran to the end" "killed by signal $((rc - 128)) from outside this test (guest status $guest_rc)"
elif ! grep -q '^kiosk checks: ' "$log"; then
	host_fail "the guest ran the checks to the end" "no summary line from kiosk_checks.py (status $rc)"
	[ "$rc" != 0 ] || rc=1
elif ! grep -q '^kiosk host: ' "$hostlog"; then
	host_fail "the host helper ran to the end" "no summary line from kiosk_host.py"
	[ "$rc" != 0 ] || rc=1
elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	host_fail "the guest exits 0 when every check passed" "status $rc"
fi
[ "$rc" != 0 ] || [ "$failed" = 0 ] || rc=1
echo "kiosk-test: boot + checks + poweroff $(secs "$t"); total $(secs "$t0"); status $rc"
report
exit "$rc"
