#!/bin/bash
# The VM smoke test, run inside the guest (tests/vm/smoke-host.sh boots it): the guest can run
# vscanout and its test peers, and the sample display mdevs answer the VFIO graphics-plane API
# as expected (smoke_checks.py). One `RESULT: PASS|FAIL|SKIP <check>` line per check, then a
# summary; exits 1 if any check failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=${VSCANOUT_ROOT:-$(cd "$here/../.." && pwd)}
python=/usr/bin/python3
mbochs_uuid=0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e01
mdpy_uuid=0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e02

passed=0 failed=0 skipped=0
result() { # PASS|FAIL|SKIP CHECK [DETAIL]
	echo "RESULT: $1 $2${3:+: $3}"
	case $1 in PASS) passed=$((passed + 1)) ;; FAIL) failed=$((failed + 1)) ;; *) skipped=$((skipped + 1)) ;; esac
}
now() { cut -d' ' -f1 /proc/uptime; }
since() { echo "$(now) $1" | awk '{ printf "%.2f s", $1 - $2 }'; }

echo "== guest: $(uname -r), $(nproc) CPUs"

# --- what vscanout's tests need from the guest ---------------------------------------------------
t=$(now)
if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ "$(stat -f -c %T "$XDG_RUNTIME_DIR" 2>/dev/null)" = tmpfs ] &&
	touch "$XDG_RUNTIME_DIR/.probe" 2>/dev/null; then
	rm -f "$XDG_RUNTIME_DIR/.probe"
	result PASS "XDG_RUNTIME_DIR is a writable tmpfs" "$XDG_RUNTIME_DIR"
else
	result FAIL "XDG_RUNTIME_DIR is a writable tmpfs" "${XDG_RUNTIME_DIR:-unset}"
fi

bin=$root/build/src/vscanout
if version=$("$bin" --version 2>&1); then
	result PASS "vscanout runs in the guest" "$version"
else
	result FAIL "vscanout runs in the guest" "$bin: ${version:-not found}"
fi

if command -v vulkaninfo > /dev/null; then
	summary=$(timeout 60 vulkaninfo --summary 2>&1)
	device=$(echo "$summary" | grep -m1 -E 'deviceName' | sed 's/.*= *//')
	if echo "$summary" | grep -q -E 'PHYSICAL_DEVICE_TYPE_CPU|llvmpipe'; then
		result PASS "lavapipe works in the guest" "$device"
	else
		result FAIL "lavapipe works in the guest" "$(echo "$summary" | tail -3 | tr '\n' ' ')"
	fi
else
	result SKIP "lavapipe works in the guest" "vulkaninfo is not installed (vulkan-tools)"
fi

for tool in grim wlr-randr; do
	if path=$(command -v $tool); then result PASS "$tool is present" "$path"; else result FAIL "$tool is present"; fi
done
echo "   (environment checks took $(since "$t"))"

# --- the sample devices --------------------------------------------------------------------------
t=$(now)
types=$($python "$here/guest_driver.py" types)
for ty in mbochs-medium mdpy-vga; do
	if echo "$types" | grep -q "\"$ty\""; then result PASS "mdev type $ty is registered"; else result FAIL "mdev type $ty is registered" "$types"; fi
done
created=()
for spec in "mbochs-medium $mbochs_uuid" "mdpy-vga $mdpy_uuid"; do
	read -r type uuid <<< "$spec"
	if $python "$here/guest_driver.py" create "$type" "$uuid" && [ -e "/sys/bus/mdev/devices/$uuid" ]; then
		created+=("$uuid")
		result PASS "create $type mdev" "$uuid in IOMMU group $(basename "$(readlink "/sys/bus/mdev/devices/$uuid/iommu_group")")"
	else
		result FAIL "create $type mdev" "$uuid"
	fi
done

if [ ${#created[@]} = 2 ]; then
	log=$(mktemp)
	$python "$here/smoke_checks.py" "$mbochs_uuid" "$mdpy_uuid" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	passed=$((passed + $(grep -c '^RESULT: PASS' "$log")))
	failed=$((failed + $(grep -c '^RESULT: FAIL' "$log")))
	if [ "$rc" != 0 ] && ! grep -q '^RESULT: FAIL' "$log"; then
		result FAIL "smoke_checks.py ran to the end" "exit status $rc"
	fi
	cp "$log" "${VSCANOUT_VM_OUT:-/tmp}/smoke_checks.log" 2>/dev/null
	rm -f "$log"
fi

for uuid in "${created[@]}"; do
	if $python "$here/guest_driver.py" remove "$uuid" && [ ! -e "/sys/bus/mdev/devices/$uuid" ]; then
		result PASS "remove mdev" "$uuid"
	else
		result FAIL "remove mdev" "$uuid"
	fi
done

# Warnings from the sample drivers (their WARN_ONs) or from VFIO would mean a broken kernel side.
# Case-sensitive, as the kernel prints them ("loops_per_jiffy" would match a careless "oops").
oops='WARNING:|BUG:|Oops:|Call Trace:|general protection'
dmesg > "${VSCANOUT_VM_OUT:-/tmp}/dmesg.txt" 2>/dev/null
if dmesg | grep -E "$oops" > /dev/null; then
	result FAIL "no kernel warnings" "$(dmesg | grep -E -m3 "$oops" | tr '\n' ' ')"
else
	result PASS "no kernel warnings"
fi
echo "   (device checks took $(since "$t"))"

echo "vm smoke: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
