#!/usr/bin/env bash
# Makes wlroots 0.18 available to `meson setup`, the one version vscanout builds against.
#
#   - The distribution has it (Debian 13: libwlroots-0.18-dev): that package; meson finds its
#     wlroots-0.18.pc.
#   - Debian 12 has no wlroots 0.18: meson builds it as a subproject (subprojects/wlroots.wrap).
#     Meson cannot download it here, so this puts the source in place from Debian 13's source
#     package (a trixie deb-src entry, added if missing; the orig tarball is checked against the
#     wrap's source_hash), and installs what wlroots needs to build: bookworm's own packages, and
#     from bookworm-backports libwayland-dev 1.23, wayland-protocols 1.43, libdisplay-info-dev and
#     libdrm-dev 2.4.123 (wlroots 0.18 needs wayland >= 1.23, wayland-protocols >= 1.35,
#     libdrm >= 2.4.122; bookworm has 1.21, 1.31 and 2.4.114).
#
# Safe to re-run: when everything is present it prints one line and touches nothing. Needs root
# (or sudo) when something is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
wrap=$repo/subprojects/wlroots.wrap

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

wrap_value() { sed -n "s/^$1 *= *//p" "$wrap"; }
src_dir=$repo/subprojects/$(wrap_value directory)
tarball=$(wrap_value source_filename)
hash=$(wrap_value source_hash)

installed_version() { # package -> its installed version, or nothing
	dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "install" && $3 == "installed" { print $4 }' || true
}
at_least() { # package minimum-version -> installed and at least that version
	local v
	v=$(installed_version "$1")
	[ -n "$v" ] && dpkg --compare-versions "$v" ge "$2"
}

# 1. The system's wlroots 0.18.
if pkg-config --exists wlroots-0.18; then
	echo "setup-wlroots: the system's wlroots $(pkg-config --modversion wlroots-0.18)"
	exit 0
fi

# 2. The subproject: its source and its build dependencies.
packages=(
	hwdata libinput-dev libseat-dev libudev-dev libpixman-1-dev libxkbcommon-dev
	libxcb1-dev libxcb-dri3-dev libxcb-present-dev libxcb-render0-dev libxcb-render-util0-dev
	libxcb-shm0-dev libxcb-xfixes0-dev libxcb-xinput-dev
)
# package:minimum version; below it, the package comes from bookworm-backports.
backports=(libwayland-dev:1.23 wayland-protocols:1.35 libdisplay-info-dev:0.1.1 libdrm-dev:2.4.122)
bpo_suite=bookworm-backports
missing=()
for p in "${packages[@]}"; do
	[ -n "$(installed_version "$p")" ] || missing+=("$p")
done
missing_bpo=()
for entry in "${backports[@]}"; do
	at_least "${entry%%:*}" "${entry#*:}" || missing_bpo+=("${entry%%:*}/$bpo_suite")
done

# vscanout's patches to the subproject (subprojects/packagefiles, also named by the wrap's
# diff_files for a meson that downloads it itself): applied once, checked every run.
patch_subproject() {
	local p
	for p in "$repo/subprojects/packagefiles/"*.patch; do
		[ -f "$p" ] || continue
		if patch -d "$src_dir" -p1 -R --dry-run --force --quiet < "$p" > /dev/null 2>&1; then continue; fi
		patch -d "$src_dir" -p1 --forward --fuzz=0 --quiet < "$p" ||
			{ echo "setup-wlroots: $(basename "$p") does not apply to subprojects/$(basename "$src_dir")" >&2; exit 1; }
		echo "setup-wlroots: applied $(basename "$p")"
	done
}

if [ -f "$src_dir/meson.build" ]; then patch_subproject; fi
if [ -f "$src_dir/meson.build" ] && [ ${#missing[@]} -eq 0 ] && [ ${#missing_bpo[@]} -eq 0 ]; then
	echo "setup-wlroots: wlroots $(sed -n "s/^\s*version: '\(.*\)',/\1/p" "$src_dir/meson.build" | head -1)" \
		"source in subprojects/$(basename "$src_dir"), its build dependencies present"
	exit 0
fi

has_trixie_src() { # a deb-src entry for trixie, one-line or deb822 style
	grep -qs '^deb-src .* trixie ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = "" } /(^|\n)Types:[^\n]*deb-src/ && /(^|\n)Suites:[^\n]*trixie/ { found = 1 }
		     END { exit !found }' "$f" && return 0
	done
	return 1
}

export DEBIAN_FRONTEND=noninteractive
apt_updated=false
apt_update() {
	$apt_updated && return
	$SUDO apt-get update -q
	apt_updated=true
}

# A distribution that packages wlroots 0.18 (Debian 13): take its package.
if [[ $(apt-cache policy libwlroots-0.18-dev 2>/dev/null | sed -n 's/^ *Candidate: //p') != "" &&
	$(apt-cache policy libwlroots-0.18-dev | sed -n 's/^ *Candidate: //p') != "(none)" ]]; then
	echo "setup-wlroots: installing libwlroots-0.18-dev"
	$SUDO apt-get install -y -q --no-install-recommends libwlroots-0.18-dev
	exit 0
fi

if [ ${#missing[@]} -gt 0 ] || [ ${#missing_bpo[@]} -gt 0 ]; then
	echo "setup-wlroots: installing wlroots' build dependencies: ${missing[*]} ${missing_bpo[*]}"
	apt_update
	# The backports first, by name: what they need (libwayland-client0, libdrm2, ...) comes
	# from backports with them.
	if [ ${#missing_bpo[@]} -gt 0 ]; then
		$SUDO apt-get install -y -q --no-install-recommends "${missing_bpo[@]}"
	fi
	if [ ${#missing[@]} -gt 0 ]; then
		$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
fi

if [ ! -f "$src_dir/meson.build" ]; then
	# Debian 13's source package: a deb-src entry only (no trixie binaries on this system).
	if ! has_trixie_src; then
		echo "setup-wlroots: adding Debian 13's sources (deb-src only) as /etc/apt/sources.list.d/trixie-src.sources"
		$SUDO tee /etc/apt/sources.list.d/trixie-src.sources > /dev/null <<-EOF
			Types: deb-src
			URIs: http://deb.debian.org/debian
			Suites: trixie
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt_updated=false
	fi
	apt_update
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	echo "setup-wlroots: fetching wlroots' source from Debian 13 into subprojects/$(basename "$src_dir")"
	# Only the upstream tarball is used (Debian's patches are not applied). apt runs its
	# download as _apt, which must be able to write there.
	chmod 755 "$tmp"
	(cd "$tmp" && $SUDO apt-get source -q --download-only wlroots > "$tmp/apt.log" 2>&1) || {
		cat "$tmp/apt.log" >&2
		echo "setup-wlroots: apt-get source wlroots failed" >&2
		exit 1
	}
	if [ ! -f "$tmp/$tarball" ]; then
		echo "setup-wlroots: Debian 13's wlroots source has no $tarball (it has: $(cd "$tmp" && ls | tr '\n' ' ')); update subprojects/wlroots.wrap" >&2
		exit 1
	fi
	if ! echo "$hash  $tmp/$tarball" | sha256sum --quiet -c -; then
		echo "setup-wlroots: $tarball does not match subprojects/wlroots.wrap's source_hash" >&2
		exit 1
	fi
	rm -rf "$src_dir.tmp"
	mkdir -p "$src_dir.tmp"
	tar -xf "$tmp/$tarball" -C "$src_dir.tmp" --strip-components=1
	mv "$src_dir.tmp" "$src_dir"
	patch_subproject
fi
echo "setup-wlroots: wlroots source in subprojects/$(basename "$src_dir"), its build dependencies present"
