#!/usr/bin/env bash
# Usage: bench/gpu-check.sh [BUILD-DIR]        (default: build-gpu-check in the repository)
# For a machine with a GPU, or any Vulkan driver: what vscanout's zero-copy paths can use there,
# and what they cost. Needs only this repository; it says what is missing rather than failing
# obscurely, and goes on with what it can do. Steps:
#   1. the machine: kernel, GPUs (lspci), DRM nodes (/dev/dri; none is fine: then Vulkan devices
#      cannot be matched to a KMS device, and only the CPU paths have buffers), /dev/udmabuf;
#   2. the build dependencies, then meson + ninja: bench/vscanout_import_bench and tests/unit_tests
#      only, into BUILD-DIR;
#   3. the Vulkan devices (vulkaninfo --summary where installed) and, per device, the extensions the
#      import and output paths use: VK_EXT_external_memory_dma_buf, VK_EXT_image_drm_format_modifier,
#      VK_EXT_physical_device_drm, VK_EXT_external_memory_host, VK_KHR_external_semaphore_fd;
#   4. the import bench (its dma-buf rows need /dev/udmabuf, readable and writable by this user);
#   5. the unit tests of the import choice, the dma-buf import, the device choice and zero copy
#      (tests/unit/zero_copy_test.cpp: a dma-buf the device exports, imported as the same memory).
# A GPU machine that cannot build (no Debian packages there): bench/gpu-prebuilt.sh instead.
# Environment: BENCH_ARGS (passed to the bench, e.g. "--seconds 2 --size 4k" or
# "--vulkan-device 1"), MESON_ARGS (extra `meson setup` arguments).
# Exit status: 0 when every step ran and passed; 1 when one failed; 2 when nothing could be built
# (missing dependencies: listed); the last lines sum it up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(realpath -m "${1:-$repo/build-gpu-check}")
summary=()
status=0
step() { echo; echo "== $*"; }
note() {
	summary+=("$1")
	case $1 in
	*FAILED*) status=1 ;;
	"build: SKIPPED"*) [ "$status" != 0 ] || status=2 ;;
	esac
}
have() { command -v "$1" > /dev/null 2>&1; }

# --- 1. the machine ------------------------------------------------------------------------------
step "machine"
echo "kernel: $(uname -srm)"
# shellcheck source=/dev/null
[ -r /etc/os-release ] && echo "system: $(. /etc/os-release && echo "${PRETTY_NAME:-$ID}")"
if have lspci; then
	gpus=$(lspci -nn 2>/dev/null | grep -Ei 'vga|3d controller|display controller' || true)
	echo "PCI display devices:"
	while IFS= read -r line; do echo "  $line"; done <<< "${gpus:-none}"
else
	echo "lspci is missing (Debian: pciutils): PCI display devices not listed"
fi
drm_nodes=$(ls /dev/dri/card* /dev/dri/renderD* 2>/dev/null || true)
if [ -n "$drm_nodes" ]; then
	echo "DRM nodes:"
	for n in $drm_nodes; do
		b=$(basename "$n")
		driver=$(basename "$(readlink -f "/sys/class/drm/$b/device/driver" 2>/dev/null)" 2>/dev/null || true)
		printf '  %-20s %-8s driver %-10s %s\n' "$n" "$(cat "/sys/class/drm/$b/dev" 2>/dev/null)" "${driver:-?}" \
			"$( [ -r "$n" ] && [ -w "$n" ] && echo "(usable by $(id -un))" || echo "(not usable by $(id -un): group $(stat -c %G "$n"))")"
	done
else
	echo "DRM nodes: none (no /dev/dri): only a Vulkan loader and driver here; devices cannot be matched"
	echo "  to a KMS device, and no GPU dma-buf can be made"
fi
if [ -c /dev/udmabuf ]; then
	if [ -r /dev/udmabuf ] && [ -w /dev/udmabuf ]; then echo "/dev/udmabuf: yes (the bench's dma-buf rows run)"
	else echo "/dev/udmabuf: present but not usable by $(id -un) ($(stat -c '%U:%G %a' /dev/udmabuf)): the bench skips its dma-buf rows (run as root or join that group)"; fi
else
	echo "/dev/udmabuf: no (modprobe udmabuf where the kernel has it): the bench skips its dma-buf rows"
fi

# --- 2. build ------------------------------------------------------------------------------------
step "build dependencies"
missing=()
for t in "meson:meson" "ninja:ninja-build" "c++:g++" "pkg-config:pkg-config" "glslc:glslc"; do
	have "${t%%:*}" || missing+=("${t%%:*} (Debian: ${t#*:})")
done
if have pkg-config; then
	# The bench and the unit tests need the render layer only, but the build files ask for all of
	# these before any target is built.
	for m in "vulkan:libvulkan-dev" "libdrm:libdrm-dev" "libxxhash:libxxhash-dev" "libsystemd:libsystemd-dev" \
		"gtest:libgtest-dev" "wayland-server:libwayland-dev" "pixman-1:libpixman-1-dev" "xkbcommon:libxkbcommon-dev"; do
		pkg-config --exists "${m%%:*}" || missing+=("${m%%:*} (Debian: ${m#*:})")
	done
	# wlroots 0.18: the system's, or the meson subproject's source that scripts/setup-wlroots.sh
	# unpacks (meson cannot download it everywhere).
	if ! pkg-config --exists wlroots-0.18 && ! ls -d "$repo"/subprojects/wlroots-0.18.* > /dev/null 2>&1; then
		missing+=("wlroots 0.18 (scripts/setup-wlroots.sh; Debian 13: libwlroots-0.18-dev)")
	fi
fi
built=""
if [ ${#missing[@]} -gt 0 ]; then
	echo "missing, so nothing is built:"
	printf '  %s\n' "${missing[@]}"
	echo "  (Debian 12: scripts/setup.sh installs all of them)"
	note "build: SKIPPED (missing: ${missing[*]})"
else
	echo "all present"
	step "build ($build)"
	ok=1
	log=$(mktemp)
	if [ ! -f "$build/build.ninja" ]; then
		# shellcheck disable=SC2086 # MESON_ARGS is a list of words
		meson setup "$build" "$repo" -Dtests=true -Dbench=true ${MESON_ARGS:-} > "$log" 2>&1 ||
			{ ok=""; echo "meson setup failed:"; tail -n 25 "$log"; }
	fi
	if [ -n "$ok" ]; then
		ninja -C "$build" bench/vscanout_import_bench tests/unit_tests > "$log" 2>&1 ||
			{ ok=""; echo "ninja failed:"; grep -E 'error|Error' "$log" | head -n 30; tail -n 5 "$log"; }
	fi
	rm -f "$log"
	if [ -n "$ok" ]; then echo "built"; built=1; note "build: ok"; else note "build: FAILED"; fi
fi
bench=$build/bench/vscanout_import_bench
unit=$build/tests/unit_tests

# --- 3. the Vulkan devices -----------------------------------------------------------------------
step "Vulkan devices"
if have vulkaninfo; then
	vulkaninfo --summary 2>&1 | sed -n '/^Devices:/,$p'
else
	echo "vulkaninfo is missing (Debian: vulkan-tools): no summary"
fi
if [ -n "$built" ]; then
	echo
	if "$bench" --devices; then note "devices: listed"; else note "devices: FAILED (no Vulkan loader or driver?)"; fi
elif have vulkaninfo; then
	# Without the bench: the same extensions from vulkaninfo's full report, per GPU section.
	echo
	vulkaninfo 2>/dev/null | awk '
		/^GPU[0-9]+:/ { gpu = $1 }
		/deviceName/ && gpu != "" && !(gpu in name) { sub(/.*= /, ""); name[gpu] = $0; order[n++] = gpu }
		/VK_EXT_external_memory_dma_buf|VK_EXT_image_drm_format_modifier|VK_EXT_physical_device_drm|VK_EXT_external_memory_host|VK_KHR_external_semaphore_fd/ && gpu != "" {
			split($1, e, " "); has[gpu, e[1]] = 1 }
		END {
			split("VK_EXT_external_memory_dma_buf VK_EXT_image_drm_format_modifier VK_EXT_physical_device_drm VK_EXT_external_memory_host VK_KHR_external_semaphore_fd", want, " ")
			for (i = 0; i < n; i++) {
				g = order[i]; print g " " name[g]
				for (j = 1; j <= 5; j++) printf "  %-36s %s\n", want[j], ((g, want[j]) in has) ? "yes" : "no"
			}
		}'
	note "devices: listed by vulkaninfo"
else
	echo "neither the bench nor vulkaninfo: the Vulkan loader (libvulkan1) and a driver cannot be checked"
	note "devices: SKIPPED"
fi

# --- 4. the import bench -------------------------------------------------------------------------
step "import bench"
if [ -n "$built" ]; then
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of words
	if "$bench" ${BENCH_ARGS:-}; then note "import bench: ok"; else note "import bench: FAILED (status $?)"; fi
else
	echo "not built: skipped"
	note "import bench: SKIPPED"
fi

# --- 5. the unit tests of the import paths -------------------------------------------------------
step "unit tests: Dmabuf*:ImportOrder*:VkDevice*:ZeroCopy*"
if [ -n "$built" ]; then
	if "$unit" --gtest_filter='Dmabuf*:ImportOrder*:VkDevice*:ZeroCopy*' 2>&1 | grep -Ev '^\[ RUN +\]'; then
		note "unit tests: ok"
	else
		note "unit tests: FAILED"
	fi
else
	echo "not built: skipped"
	note "unit tests: SKIPPED"
fi

step "summary"
printf '%s\n' "${summary[@]}"
exit "$status"
