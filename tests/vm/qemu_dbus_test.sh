#!/usr/bin/env bash
# The QEMU `-display dbus` VM test from the host: a real QEMU 7.2 runs Debian's kernel with
# virtio-gpu (two heads), two virtio tablets and a virtio keyboard, shown on a private D-Bus bus;
# the guest (tests/vm/qemu_guest.py) draws the sim pattern and the sim cursor through KMS and logs
# its input; vscanout runs on this host with `--source qemu` (headless, and nested in a headless
# sway for the pointer) and tests/vm/qemu_dbus_host.py checks what it shows and what reaches the
# guest. See tests/vm/README.md, "The QEMU -display dbus test".
#
# Installs what is missing (tests/vm/setup.sh and the host tools below), builds the VM
# (build.sh), runs the checks. vscanout is NOT built here: build/src/vscanout (or VSCANOUT_BIN)
# must exist. Prints every check's `RESULT: PASS|FAIL <check>: <reason>` line and last
#   qemu vm: N passed, M failed
# Exits 0 when every check passed, 1 otherwise.
#
# Arguments go to qemu_dbus_host.py (--plumbing-only: QEMU and the guest through our own D-Bus
# client, without vscanout; --no-plumbing; --deadline SECONDS, default 170). Environment:
# VSCANOUT_BIN, VM_BUILD (work files in $VM_BUILD/qemu-dbus, default build-vm/qemu-dbus: consoles,
# vscanout's logs and stats, captures of failed checks), VM_KERNEL_ARGS / VM_QEMU_ARGS (appended),
# QEMU_TEST_VERBOSE=1 (every console line).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
vm_test_init qemu-test "qemu vm"

"$here/setup.sh" || vm_abort "host setup" "tests/vm/setup.sh failed"
# The host side: the bus, the Wayland clients, the parent compositor, Python's GObject bindings.
tools=(dbus-daemon:dbus-daemon grim:grim wlr-randr:wlr-randr sway:sway swaymsg:sway wtype:wtype setpriv:util-linux)
want=()
for t in "${tools[@]}"; do command -v "${t%%:*}" > /dev/null || want+=("${t#*:}"); done
/usr/bin/python3 -c 'import gi; gi.require_version("Gio", "2.0"); from gi.repository import Gio' 2> /dev/null ||
	want+=(python3-gi)
if [ ${#want[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "qemu-test: installing ${want[*]}"
	{ $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
		--no-install-recommends "${want[@]}"; } || vm_abort "host setup" "apt-get install ${want[*]} failed"
fi
echo "qemu-test: setup $(secs "$t0")"

vm_vscanout require
vm_build quiet

# qemu_dbus_host.py prints the RESULT lines and the final line itself.
t=$(now)
/usr/bin/python3 -u "$here/qemu_dbus_host.py" --bin "$bin" "$@"
rc=$?
echo "qemu-test: boots + checks $(secs "$t"); total $(secs "$t0"); status $rc"
exit "$rc"
