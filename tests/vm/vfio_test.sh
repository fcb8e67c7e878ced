#!/usr/bin/env bash
# The VFIO end-to-end test from the host: installs what is missing (setup.sh), checks
# guest_driver.py's ABI constants, rebuilds vscanout (ninja -C build src/vscanout), builds the VM
# (build.sh), boots it and runs vfio_checks.py in the guest: vscanout showing one mbochs and one
# mdpy mdev through VFIO (frames, flips, import counts, region redraws, mode change, display off,
# a device opened by vscanout itself, removal of a device while it is shown, a clean exit, and
# the EDID: `size=` given to the guest through mbochs' EDID region, and vscanout nested in a
# sway inside the VM whose window size becomes the guest's mode).
#
# Prints every check's `RESULT: PASS|FAIL <check>: <reason>` line as the guest prints it, then the
# time of each step, and last a line CI can count:
#   vfio vm: N passed, M failed
# Exits with the guest's status (1 when a check failed, 124 when the VM ran past VM_TIMEOUT).
#
# The scenario runs three times, one VM boot each: vscanout on its default import path (dma-buf),
# then with --import host and --import copy (VSCANOUT_VFIO_IMPORTS: the list, e.g. "auto").
#
# Environment: VM_TIMEOUT (seconds for the boot and the whole guest run, default 150), the other
# run.sh/build.sh variables (VM_BUILD, VM_OUT, ...), VSCANOUT_BIN (test this binary instead of
# build/src/vscanout, which is then not rebuilt; it must lie outside /tmp, which the guest cannot
# see). Captures of failed checks, vscanout's logs and stats, the serve state and the guest's
# dmesg land in the out share (VM_OUT, default build-vm/out-vfio; console: VM_OUT.console.log).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
vm_test_init vfio-test "vfio vm"

vm_setup
vm_check_abi
vm_vscanout build
vm_build show
vm_out out-vfio # a smoke test or another VM test can run beside it

t=$(now)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
vm_guest_args
# The same scenario on each import path: dma-buf (the default; Mesa 25's lavapipe imports
# mbochs' dma-bufs), then forced onto host memory and onto the counted copy.
for import in ${VSCANOUT_VFIO_IMPORTS:-auto host copy}; do
	VM_GUEST_ENV="VSCANOUT_IMPORT=$import" VM_TIMEOUT=${VM_TIMEOUT:-150} \
		vm_run "$log" "$here/vfio_checks.py" "${guest_args[@]}"
	vm_count "$log"
	vm_verdict "$log" "vfio checks" vfio_checks.py
done
vm_finish "$t" "boot + checks + poweroff"
