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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
vm_test_init kiosk-test "kiosk vm"

vm_setup
vm_vscanout build
vm_build show
vm_out out-kiosk # another VM test can run beside it

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
# shellcheck disable=SC2317 # called by vm_verdict
host_summary() { # the host helper's own summary line
	grep -q '^kiosk host: ' "$hostlog" && return
	host_fail "the host helper ran to the end" "no summary line from kiosk_host.py"
	return 1
}

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
vm_guest_args
VM_TIMEOUT=$timeout_s VM_MODULES=kms,udmabuf VM_KERNEL_ARGS="video=Virtual-2:1280x800e ${VM_KERNEL_ARGS:-}" \
	VM_QEMU_ARGS="$qemu_args" vm_run "$log" "$here/kiosk_checks.py" "${guest_args[@]}"
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

vm_count "$log" "$hostlog"
vm_verdict "$log" "kiosk checks" kiosk_checks.py host_summary
vm_finish "$t" "boot + checks + poweroff"
