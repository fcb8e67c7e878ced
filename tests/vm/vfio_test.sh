#!/usr/bin/env bash
# The VFIO end-to-end test from the host: installs what is missing (setup.sh), checks
# guest_driver.py's ABI constants, rebuilds vscanout (ninja -C build src/vscanout), builds the VM
# (build.sh), boots it and runs vfio_checks.py in the guest: vscanout showing one mbochs and one
# mdpy mdev through VFIO (frames, flips, import counts, region redraws, mode change, display off,
# a device opened by vscanout itself, removal of a device while it is shown, a clean exit).
#
# Prints every check's `RESULT: PASS|FAIL <check>: <reason>` line as the guest prints it, then the
# time of each step, and last a line CI can count:
#   vfio vm: N passed, M failed
# Exits with the guest's status (1 when a check failed, 124 when the VM ran past VM_TIMEOUT).
#
# Environment: VM_TIMEOUT (seconds for the boot and the whole guest run, default 150), the other
# run.sh/build.sh variables (VM_BUILD, VM_OUT, ...), VSCANOUT_BIN (test this binary instead of
# build/src/vscanout, which is then not rebuilt; it must lie outside /tmp, which the guest cannot
# see). Captures of failed checks, vscanout's logs and stats, the serve state and the guest's
# dmesg land in the out share (VM_OUT, default build-vm/out-vfio; console: VM_OUT.console.log).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
now() { date +%s%N; }
secs() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((d / 1000)) $((d % 1000)); }

passed=0 failed=0
report() { # the final line; extra failures found on the host come first
	echo "vfio vm: $passed passed, $failed failed"
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
echo "vfio-test: setup $(secs "$t")"

t=$(now)
if ! /usr/bin/python3 "$here/guest_driver.py" check-abi; then
	host_fail "guest_driver ABI" "guest_driver.py's constants differ from <linux/vfio.h>"
	report
	exit 1
fi
echo "vfio-test: check-abi $(secs "$t")"

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
			echo "vfio-test: ninja or the binary failed (try $try); retrying" >&2
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
echo "vfio-test: vscanout build $(secs "$t")"

t=$(now)
if ! "$here/build.sh"; then
	host_fail "vm build" "tests/vm/build.sh failed"
	report
	exit 1
fi
echo "vfio-test: vm build $(secs "$t")"

# Its own out share and console log, so a smoke test or another VM test can run beside it.
export VM_OUT=${VM_OUT:-${VM_BUILD:-$repo/build-vm}/out-vfio}
export VM_CONSOLE=${VM_CONSOLE:-$VM_OUT.console.log}
t=$(now)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The default binary is not named on the command line: a `pkill -f build/src/vscanout` elsewhere
# on the host (another test's clean-up) would otherwise end run.sh in the middle of the run.
guest_args=()
[ -z "${VSCANOUT_BIN:-}" ] || guest_args=(--bin "$bin")
VM_TIMEOUT=${VM_TIMEOUT:-150} "$here/run.sh" "$here/vfio_checks.py" "${guest_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tr -d '\r' < "$log" > "$log.clean" && mv "$log.clean" "$log"
passed=$(grep -c '^RESULT: PASS' "$log")
failed=$(grep -c '^RESULT: FAIL' "$log")
if [ "$rc" -gt 128 ] && [ "$rc" != 137 ] && ! grep -q '^vm run: ' "$log"; then
	# run.sh itself died of a signal (137 is its own QEMU timeout path, which prints a line).
	guest_rc=$(cat "$VM_OUT/rc" 2>/dev/null || echo none)
	host_fail "run.sh ran to the end" "killed by signal $((rc - 128)) from outside this test (guest status $guest_rc)"
elif ! grep -q '^vfio checks: ' "$log"; then
	host_fail "the guest ran the checks to the end" "no summary line from vfio_checks.py (status $rc)"
	[ "$rc" != 0 ] || rc=1
elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	host_fail "the guest exits 0 when every check passed" "status $rc"
elif [ "$rc" = 0 ] && [ "$failed" != 0 ]; then
	rc=1
fi
echo "vfio-test: boot + checks + poweroff $(secs "$t"); total $(secs "$t0"); status $rc"
report
exit "$rc"
