#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set up, build (warnings are errors),
# unit tests, the same unit tests and a headless subset under AddressSanitizer +
# UndefinedBehaviorSanitizer, then the headless integration tests against real clients, the fuzzers
# (a short run each), the Debian package (built, installed, run, removed), and the VM tests.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh" || exit 1

passed=0
failed=0
logdir=$(mktemp -d /tmp/vscanout-test.XXXXXX)

count_gtest() { # log
	local p f
	p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$1" | tail -1)
	f=$(grep -oP '^\[  FAILED  \] \K[0-9]+(?= tests?, listed below)' "$1" | tail -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
}
count_pytest() { # log
	local line p f e
	line=$(grep -E '[0-9]+ (passed|failed|error)' "$1" | tail -1)
	p=$(echo "$line" | grep -oP '[0-9]+(?= passed)')
	f=$(echo "$line" | grep -oP '[0-9]+(?= failed)')
	e=$(echo "$line" | grep -oP '[0-9]+(?= error)')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0}))
}
step() { echo; echo "=== $*"; }

step "build (release, -Werror)"
scripts/build.sh build || { echo "build failed"; exit 1; }

step "unit tests"
build/tests/unit_tests 2>&1 | tee "$logdir/unit.log"
rc=${PIPESTATUS[0]}; count_gtest "$logdir/unit.log"; [ "$rc" -eq 0 ] || failed=$((failed + 1))

step "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Dbuildtype=debug -Dbench=false \
	|| { echo "sanitizer build failed"; exit 1; }
# LeakSanitizer reports lavapipe's own allocations at exit; suppressed by library, never by
# our frames.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0

step "unit tests under sanitizers"
# The Vulkan loader unloads lavapipe before LeakSanitizer reports; preloading it keeps its frames
# nameable for tests/lsan.supp.
lvp=$(ls /usr/lib/*/libvulkan_lvp.so 2>/dev/null | head -1)
LD_PRELOAD=$lvp ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0 build-asan/tests/unit_tests 2>&1 \
	| tee "$logdir/unit-asan.log"
rc=${PIPESTATUS[0]}; count_gtest "$logdir/unit-asan.log"; [ "$rc" -eq 0 ] || failed=$((failed + 1))

step "headless integration subset under sanitizers"
VSCANOUT_BIN=$root/build-asan/src/vscanout VSCANOUT_SANITIZED=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	-m sanitizer tests/integration 2>&1 | tee "$logdir/it-asan.log"
count_pytest "$logdir/it-asan.log"
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

step "headless integration tests (grim, wlr-randr, stats)"
VSCANOUT_BIN=$root/build/src/vscanout /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration 2>&1 \
	| tee "$logdir/it.log"
count_pytest "$logdir/it.log"

# The fuzzers (fuzz/): built with clang into build-fuzz, each run over its committed corpus and
# then for 15 s more (one job each: about 2 minutes with the build on two cores). Each target
# counts as one test; a crash, hang or leak fails it (fuzz/run.sh keeps the reproducer).
step "fuzzers: each target over its corpus, then 15 s of fuzzing (fuzz/run.sh)"
# A fresh work corpus: the test runs the committed seeds, not what longer runs gathered.
FUZZ_JOBS=1 VSCANOUT_FUZZ_WORK=$logdir/fuzz-work fuzz/run.sh 15 2>&1 | tee "$logdir/fuzz.log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$logdir/fuzz.log" | tail -1)
p=$(echo "$line" | grep -oP '[0-9]+(?= passed)'); f=$(echo "$line" | grep -oP '[0-9]+(?= failed)')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi

# A VM test prints "<label>: N passed, M failed" last; its exit status counts as a failure too
# when it failed without a counted check (it broke before its checks).
vm_test() { # SCRIPT LOG LABEL
	"$1" 2>&1 | tee "$logdir/$2"
	local rc=${PIPESTATUS[0]} line p f
	line=$(grep -E "^$3: [0-9]+ passed, [0-9]+ failed" "$logdir/$2" | tail -1)
	p=$(echo "$line" | grep -oP '[0-9]+(?= passed)'); f=$(echo "$line" | grep -oP '[0-9]+(?= failed)')
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
	if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
}

step "The Debian package: built from a copy of the tree (dpkg-buildpackage), lintian, installed, run, removed"
vm_test tests/package/package_test.sh package.log "package"

step "VFIO in a VM: Debian's kernel under QEMU with the mbochs and mdpy sample vGPUs"
vm_test tests/vm/vfio_test.sh vm.log "vfio vm"

step "The simulated vGPU on real dma-bufs in a VM: udmabuf and vgem buffers imported by lavapipe, vgem fences"
vm_test tests/vm/sim_dmabuf_test.sh sim-dmabuf-vm.log "sim dmabuf vm"

step "DRM/KMS kiosk in a VM: virtio-gpu under QEMU, checked by debugfs, QMP screendump and QEMU's trace"
vm_test tests/vm/kiosk_test.sh kiosk-vm.log "kiosk vm"

step "The QEMU source in a VM: QEMU -display dbus with two virtio-gpu heads and a guest program of ours"
vm_test tests/vm/qemu_dbus_test.sh qemu-vm.log "qemu vm"

echo
echo "logs: $logdir"
echo "vscanout: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
