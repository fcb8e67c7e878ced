#!/usr/bin/env bash
# Proves the VM harness end to end from the host: installs what is missing (setup.sh), checks
# guest_driver.py's ioctl numbers and struct layouts against <linux/vfio.h>, builds the modules
# and initramfs, boots the VM and runs smoke.sh in it. Prints the time of each step; exits with
# the smoke test's status. Needs root for setup.sh (a no-op once everything is installed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
now() { date +%s%N; }
secs() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((d / 1000)) $((d % 1000)); }

t0=$(now)
t=$t0
"$here/setup.sh"
echo "smoke-host: setup $(secs "$t")"

t=$(now)
/usr/bin/python3 "$here/guest_driver.py" check-abi
echo "smoke-host: check-abi $(secs "$t")"

if [ ! -x "$repo/build/src/vscanout" ]; then
	t=$(now)
	echo "smoke-host: no build/src/vscanout yet; building it"
	"$repo/scripts/setup.sh"
	"$repo/scripts/build.sh" "$repo/build" > /dev/null
	echo "smoke-host: vscanout build $(secs "$t")"
fi

t=$(now)
"$here/build.sh"
echo "smoke-host: vm build $(secs "$t")"

t=$(now)
set +e
"$here/run.sh" "$here/smoke.sh"
rc=$?
set -e
echo "smoke-host: boot + smoke + poweroff $(secs "$t"); total $(secs "$t0"); status $rc"
exit "$rc"
