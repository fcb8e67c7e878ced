#!/usr/bin/env bash
# Installs everything vscanout needs to build, run and test on Debian 12 (bookworm), before any
# test runs: the build tools and libraries, the test peers, and what the VM tests boot (QEMU, the
# pinned guest kernel; tests/vm/setup.sh). Safe to re-run: when everything is present it prints
# one line and touches nothing (not even apt-get update). Needs root (or sudo).
#
# Some packages come from bookworm-backports, enabled here the way Debian documents it (a sources
# entry; apt never picks a backport unless asked by name, as below):
#   mesa-vulkan-drivers  Mesa 25: its lavapipe imports dma-bufs (VK_EXT_external_memory_dma_buf);
#                        bookworm's Mesa 22.3 cannot, so the zero-copy path would never run here
#   libdrm-dev           2.4.123, which Mesa 25 needs (the -dev package must match libdrm2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

packages=(
	# build
	meson ninja-build pkg-config g++ glslc
	libwayland-dev wayland-protocols libpixman-1-dev libxkbcommon-dev
	libvulkan-dev libxxhash-dev libgtest-dev libsystemd-dev
	nlohmann-json3-dev # QMP's JSON, for the QEMU source
	# run: the Vulkan loader (lavapipe comes from backports, below)
	libvulkan1
	# test and demo peers
	grim wlr-randr wayland-utils python3 python3-pytest sway weston xvfb x11-utils x11-apps imagemagick
	edid-decode # an independent EDID parser: the EDID tests check vscanout's EDIDs with it
	# systemd-analyze, to check the example kiosk unit; dbus-daemon for the QEMU source's tests
	systemd dbus-daemon
	# wtype: a virtual-keyboard client, to type into a QEMU guest through vscanout; xdotool: an
	# X11 pointer for the nested QEMU test
	wtype xdotool
	# wayvnc: the remote console (a head over VNC), checked by tests/integration/test_wayvnc.py
	# and the kiosk VM test
	wayvnc
	# vulkaninfo: the import-path tests print the driver's capabilities
	vulkan-tools
	# the man page (scdoc) and the Debian package: built with debhelper, checked with lintian,
	# its page rendered by man (tests/package/package_test.sh)
	scdoc debhelper dpkg-dev fakeroot lintian man-db
	# the fuzzers (fuzz/, -Dfuzz=true): clang, and libFuzzer with clang's sanitizer runtimes
	clang-14 libclang-rt-14-dev
)
backports=(mesa-vulkan-drivers libdrm-dev)
bpo_suite=bookworm-backports
bpo_list=/etc/apt/sources.list.d/$bpo_suite.sources

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

installed_version() { # package -> its installed version, or nothing
	dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "install" && $3 == "installed" { print $4 }' || true
}

missing=()
for p in "${packages[@]}"; do
	[ -n "$(installed_version "$p")" ] || missing+=("$p")
done
missing_bpo=()
for p in "${backports[@]}"; do
	[[ $(installed_version "$p") == *bpo12* ]] || missing_bpo+=("$p/$bpo_suite")
done

if [ ${#missing[@]} -gt 0 ] || [ ${#missing_bpo[@]} -gt 0 ]; then
	if ! grep -rqs "^Suites:.*$bpo_suite\|^deb .*$bpo_suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "setup: enabling $bpo_suite ($bpo_list)"
		$SUDO tee "$bpo_list" > /dev/null <<-EOF
			Types: deb
			URIs: http://deb.debian.org/debian
			Suites: $bpo_suite
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
	fi
	echo "setup: installing ${missing[*]} ${missing_bpo[*]}"
	$SUDO apt-get update -q
	# The backports first, by name: apt then takes the dependencies they need (libdrm2, libllvm19)
	# from backports too, and the rest of the list sees them installed.
	if [ ${#missing_bpo[@]} -gt 0 ]; then
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing_bpo[@]}"
	fi
	if [ ${#missing[@]} -gt 0 ]; then
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
else
	echo "setup: all $((${#packages[@]} + ${#backports[@]})) packages present" \
		"(mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers))"
fi

"$repo/scripts/setup-wlroots.sh"
# What the VM tests boot: QEMU, the pinned guest kernel and its source (its own script, which the
# VM tests also call; a no-op when present).
"$repo/tests/vm/setup.sh"
