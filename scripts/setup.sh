#!/usr/bin/env bash
# Installs what vscanout needs to build, run and test on Debian 12 (bookworm). Safe to re-run:
# packages already present are left alone. Needs root (or sudo).
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config g++ glslc
	libwlroots-dev libwayland-dev wayland-protocols libdrm-dev libpixman-1-dev libxkbcommon-dev
	libvulkan-dev libxxhash-dev libgtest-dev libsystemd-dev
	# run: the Vulkan loader and Mesa's lavapipe for machines without a GPU
	libvulkan1 mesa-vulkan-drivers
	# test and demo peers
	grim wlr-randr wayland-utils python3 python3-pytest sway weston xvfb x11-utils x11-apps imagemagick
	# systemd-analyze, to check the example kiosk unit; dbus-daemon for the QEMU source's tests
	systemd dbus-daemon
	# wtype: a virtual-keyboard client, to type into a QEMU guest through vscanout; xdotool: an
	# X11 pointer for the nested QEMU test
	wtype xdotool
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#packages[@]} packages present"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
