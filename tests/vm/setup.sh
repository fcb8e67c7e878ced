#!/usr/bin/env bash
# Installs what the VM tests need on Debian 12: the pinned guest kernel (image, headers and the
# source package that carries samples/vfio-mdev, all of one Debian version), QEMU, and the tools
# build.sh uses to make the initramfs and the sample modules. Safe to re-run: when everything is
# present at the pinned version it does nothing (not even apt-get update). Needs root (or sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=kernel.env
. "$here/kernel.env"
abi=$VSCANOUT_VM_KERNEL_ABI

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

tools=(
	qemu-system-x86 # the VM (TCG: no KVM needed)
	busybox-static  # the initramfs' userland
	cpio gzip xz-utils zstd kmod # initramfs packing; modinfo; decompressing kernel and modules
	gcc make bc patch # out-of-tree module build (bc: kernel Makefiles; patch: the mbochs fixes)
	python3         # guest_driver.py runs as /usr/bin/python3 inside the guest
)

installed_version() { # package -> its installed version, or nothing
	dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "install" && $3 == "installed" { print $4 }' || true
}

# The kernel packages are named after the ABI; the Debian version ties linux-source-6.1 to them.
kernel_pkgs=("linux-image-$abi-amd64" "linux-headers-$abi-amd64")
kernel_version=$(installed_version "linux-image-$abi-amd64")

want=()
for p in "${tools[@]}" "${kernel_pkgs[@]}"; do
	[ -n "$(installed_version "$p")" ] || want+=("$p")
done
if [ -z "$kernel_version" ] || [ "$(installed_version linux-source-6.1)" != "$kernel_version" ]; then
	want+=(linux-source-6.1)
fi
if [ ${#want[@]} -eq 0 ]; then
	echo "vm setup: kernel $abi-amd64 ($kernel_version), its source and the tools are present"
	exit 0
fi

echo "vm setup: installing ${want[*]}"
$SUDO apt-get update -q
if [ -z "$kernel_version" ]; then
	kernel_version=$(apt-cache show "linux-image-$abi-amd64" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	if [ -z "$kernel_version" ]; then
		echo "vm setup: the archive no longer offers linux-image-$abi-amd64; bump the ABI in" \
			"$here/kernel.env (see the comment there)" >&2
		exit 1
	fi
fi
args=()
for p in "${want[@]}"; do
	# The source must be the same Debian version as the image, not the newest candidate.
	if [ "$p" = linux-source-6.1 ]; then args+=("linux-source-6.1=$kernel_version"); else args+=("$p"); fi
done
# No initrd for the host: the VM boots our own initramfs, and nobody boots this machine from
# /boot. Skipping it saves most of the install time.
# --allow-downgrades: linux-source-6.1 may be installed at a newer version than the pin.
DEBIAN_FRONTEND=noninteractive INITRD=No $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades \
	"${args[@]}"

for f in "/boot/vmlinuz-$abi-amd64" "/lib/modules/$abi-amd64/build/Makefile" /usr/src/linux-source-6.1.tar.xz; do
	[ -e "$f" ] || { echo "vm setup: $f missing after install" >&2; exit 1; }
done
echo "vm setup: kernel $abi-amd64 ($kernel_version) ready"
