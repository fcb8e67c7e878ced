#!/usr/bin/env bash
# The simulated vGPU on real kernel dma-bufs, from the host: installs what is missing (setup.sh),
# rebuilds vscanout (ninja -C build src/vscanout), builds the VM (build.sh), boots it with the
# udmabuf and vgem modules and runs sim_dmabuf_checks.py in the guest: the sim's udmabuf and vgem
# buffers imported by lavapipe as dma-bufs, pixel-exact frames, and vgem write fences holding a
# frame back until they signal (a late one logged on its own head while the other flips); and the
# zero-copy unit tests (tests/unit/zero_copy_test.cpp) on the guest's lavapipe.
#
# Prints every check's `RESULT: PASS|FAIL <check>: <reason>` line, then a line CI can count:
#   sim dmabuf vm: N passed, M failed
# Environment: as vfio_test.sh (VM_TIMEOUT, VSCANOUT_BIN, VM_BUILD, VM_OUT, ...).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
vm_test_init sim-dmabuf-test "sim dmabuf vm"

vm_setup
vm_vscanout build
# The zero-copy unit tests run in the guest too (sim_dmabuf_checks.py): lavapipe exports dma-bufs
# there, through /dev/udmabuf.
[ -n "${VSCANOUT_BIN:-}" ] || nice ninja -C "$repo/build" tests/unit_tests > /dev/null ||
	echo "warning: ninja -C build tests/unit_tests failed; the zero-copy check will say so"
vm_build show
vm_out out-sim-dmabuf

t=$(now)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
vm_guest_args
VM_MODULES=vgem,udmabuf VM_TIMEOUT=${VM_TIMEOUT:-150} vm_run "$log" "$here/sim_dmabuf_checks.py" "${guest_args[@]}"
vm_count "$log"
vm_verdict "$log" "sim dmabuf checks" sim_dmabuf_checks.py
vm_finish "$t" "boot + checks + poweroff"
