# shellcheck shell=bash
# The steps the VM tests' host wrappers share (vfio_test.sh, kiosk_test.sh, qemu_dbus_test.sh);
# sourced, after `set -uo pipefail`, then `vm_test_init TAG LABEL`.
#
# Each step prints `TAG: <step> <time>`; a step that fails prints `RESULT: FAIL <check>: <reason>`
# and the final line `LABEL: N passed, M failed`, and exits 1. vm_run boots the VM, vm_count
# counts the RESULT lines of a log, vm_verdict adds the failures the guest could not report
# itself, vm_finish prints the times and the final line and exits with the status.
#
# Sets: here (tests/vm), repo, passed, failed, bin (vm_vscanout), guest_args (vm_guest_args),
# rc (vm_run).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
now() { date +%s%N; }
secs() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((d / 1000)) $((d % 1000)); }

vm_test_init() { # TAG LABEL
	vm_tag=$1 vm_label=$2
	passed=0 failed=0
	t0=$(now)
}

report() { # the final line
	echo "$vm_label: $passed passed, $failed failed"
}

host_fail() { # CHECK REASON: a failure before or around the guest run
	echo "RESULT: FAIL $1: $2"
	failed=$((failed + 1))
}

vm_abort() { # CHECK REASON [STATUS]: a failure that ends the test before the checks
	host_fail "$1" "$2"
	report
	exit "${3:-1}"
}

vm_setup() { # installs what is missing (setup.sh)
	local t
	t=$(now)
	"$here/setup.sh" || vm_abort "host setup" "tests/vm/setup.sh failed"
	echo "$vm_tag: setup $(secs "$t")"
}

vm_check_abi() { # guest_driver.py's ioctl numbers and struct layouts against <linux/vfio.h>
	local t
	t=$(now)
	/usr/bin/python3 "$here/guest_driver.py" check-abi ||
		vm_abort "guest_driver ABI" "guest_driver.py's constants differ from <linux/vfio.h>"
	echo "$vm_tag: check-abi $(secs "$t")"
}

# vm_vscanout build: sets bin to VSCANOUT_BIN or build/src/vscanout, which is then rebuilt
# (ninja -C build src/vscanout, or scripts/build.sh when there is no build/ yet); the guest runs
# it, so it must not lie under the host's /tmp.
# vm_vscanout require: sets bin the same way; it must exist (nothing is built).
vm_vscanout() { # build|require
	local t try ok
	bin=$(realpath -m "${VSCANOUT_BIN:-$repo/build/src/vscanout}")
	if [ "$1" = require ]; then
		[ -x "$bin" ] || vm_abort "vscanout binary" "$bin is missing: build it first (scripts/build.sh or ninja -C build)"
		return
	fi
	# Another engineer may be building in the same tree; a concurrent ninja can fail or leave the
	# binary missing for a moment, so retry a few times.
	t=$(now)
	case "$bin" in "$repo"/*) ;; /tmp/*) vm_abort "vscanout binary" "$bin: the guest cannot see the host's /tmp" 2 ;; esac
	if [ -z "${VSCANOUT_BIN:-}" ]; then
		if [ -f "$repo/build/build.ninja" ]; then
			ok=""
			for try in 1 2 3 4 5; do
				if ninja -C "$repo/build" src/vscanout > /dev/null && [ -x "$bin" ]; then ok=1; break; fi
				echo "$vm_tag: ninja or the binary failed (try $try); retrying" >&2
				sleep 3
			done
			[ -n "$ok" ] || vm_abort "build vscanout" "ninja -C build src/vscanout failed"
		else
			{ "$repo/scripts/setup.sh" && "$repo/scripts/build.sh" "$repo/build" > /dev/null; } ||
				vm_abort "build vscanout" "scripts/build.sh failed"
		fi
	fi
	for _ in $(seq 50); do [ -x "$bin" ] && break; sleep 0.2; done
	[ -x "$bin" ] || vm_abort "build vscanout" "$bin is missing"
	echo "$vm_tag: vscanout build $(secs "$t")"
}

vm_build() { # show|quiet: the sample modules and the initramfs (build.sh; its output shown or dropped)
	local t
	t=$(now)
	if [ "$1" = quiet ]; then
		"$here/build.sh" > /dev/null || vm_abort "vm build" "tests/vm/build.sh failed"
	else
		"$here/build.sh" || vm_abort "vm build" "tests/vm/build.sh failed"
	fi
	echo "$vm_tag: vm build $(secs "$t")"
}

vm_out() { # NAME: the test's own out share and console log, so that VM tests can run side by side
	export VM_OUT=${VM_OUT:-${VM_BUILD:-$repo/build-vm}/$1}
	export VM_CONSOLE=${VM_CONSOLE:-$VM_OUT.console.log}
}

# shellcheck disable=SC2034 # guest_args is for the sourcing script
vm_guest_args() { # the guest script's arguments: --bin only for VSCANOUT_BIN
	# The default binary is not named on the command line: a `pkill -f build/src/vscanout`
	# elsewhere on the host (another test's clean-up) would otherwise end run.sh in the middle.
	guest_args=()
	[ -z "${VSCANOUT_BIN:-}" ] || guest_args=(--bin "$bin")
}

vm_run() { # LOG GUEST-SCRIPT [ARGS]: run.sh, its console shown and kept in LOG (without CRs); sets rc
	local log=$1
	shift
	"$here/run.sh" "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	tr -d '\r' < "$log" > "$log.clean" && mv "$log.clean" "$log"
}

vm_count() { # LOG...: adds the RESULT lines of the logs to passed and failed
	local log
	for log in "$@"; do
		passed=$((passed + $(grep -c '^RESULT: PASS' "$log")))
		failed=$((failed + $(grep -c '^RESULT: FAIL' "$log")))
	done
}

# vm_verdict LOG SUMMARY SCRIPT [CHECK-FUNCTION]: the failures the guest's RESULT lines cannot
# tell: run.sh killed from outside, the guest script's summary line (`SUMMARY: ...`) missing,
# CHECK-FUNCTION failing (it records its own failure), a non-zero status with every check
# passed. A failed check makes a zero status 1.
vm_verdict() {
	local log=$1 summary=$2 script=$3 extra=${4:-} guest_rc
	if [ "$rc" -gt 128 ] && [ "$rc" != 137 ] && ! grep -q '^vm run: ' "$log"; then
		# run.sh itself died of a signal (137 is its own QEMU timeout path, which prints a line).
		guest_rc=$(cat "$VM_OUT/rc" 2>/dev/null || echo none)
		host_fail "run.sh ran to the end" "killed by signal $((rc - 128)) from outside this test (guest status $guest_rc)"
	elif ! grep -q "^$summary: " "$log"; then
		host_fail "the guest ran the checks to the end" "no summary line from $script (status $rc)"
		[ "$rc" != 0 ] || rc=1
	elif [ -n "$extra" ] && ! "$extra"; then
		[ "$rc" != 0 ] || rc=1
	elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
		host_fail "the guest exits 0 when every check passed" "status $rc"
	fi
	[ "$rc" != 0 ] || [ "$failed" = 0 ] || rc=1
}

vm_finish() { # T WHAT: the time of WHAT (since T) and of the whole test, the final line; exits with rc
	echo "$vm_tag: $2 $(secs "$1"); total $(secs "$t0"); status $rc"
	report
	exit "$rc"
}
