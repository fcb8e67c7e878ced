#!/usr/bin/env bash
# Zero-copy and compose checks on a GPU machine that cannot build vscanout (no meson, glslc or
# Debian's -dev packages there), from binaries built here.
#   bench/gpu-prebuilt.sh pack [BUILD-DIR]   here: strips the unit tests and the two benchmarks of
#                                            BUILD-DIR (default build) into .gpu/ with the shared
#                                            libraries they load beyond glibc and libstdc++
#   bench/gpu-prebuilt.sh run [OUT-DIR]      there, in the repository root holding .gpu/: the
#                                            machine, the Vulkan devices, the zero-copy and render
#                                            unit tests, the import and compose benchmarks; each
#                                            step's output also goes to OUT-DIR (default .gpu/out)
# The binaries run on the other machine's glibc and libstdc++ (the GPU driver needs that glibc:
# NVIDIA's, through libX11, wants glibc 2.38, so a carried older one cannot load it); they need
# glibc >= 2.36 and the libstdc++ of GCC 12 there (Debian 12, Ubuntu 24.04). The GPU's Vulkan driver is the machine's own: its ICD file is
# looked for in the usual places and under /usr/local/nvidia; VK_DRIVER_FILES overrides.
# Environment: GPU_BENCH_SECONDS (import bench, seconds per case; default 0.5), GPU_COMPOSE_FRAMES
# (compose bench; default 100).
# Exit status: 0 when every step passed, 1 when one failed (the summary at the end says which).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
carry=$repo/.gpu

pack() {
	local build=${1:-$repo/build}
	local bins=("$build/tests/unit_tests" "$build/bench/vscanout_compose_bench" "$build/bench/vscanout_import_bench")
	rm -rf "$carry"
	mkdir -p "$carry/lib"
	for b in "${bins[@]}"; do
		[ -x "$b" ] || { echo "missing $b (build it: ninja -C $build)"; return 1; }
		strip -o "$carry/$(basename "$b")" "$b"
	done
	# Every library the binaries load but glibc's and the compiler's own.
	local libs
	libs=$(for b in "${bins[@]}"; do ldd "$b" | awk '$3 ~ /^\// { print $3 }'; done | sort -u |
		grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt)\.so')
	for l in $libs; do cp -L "$l" "$carry/lib/"; done
	du -sh "$carry"
}

run() {
	local out=${1:-$carry/out}
	mkdir -p "$out"
	local status=0 summary=()
	export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	step() { echo; echo "== $*"; }
	check() { # NAME LOG COMMAND...: runs, keeps the output, notes the result
		local name=$1 log=$2
		shift 2
		"$@" 2>&1 | tee "$out/$log"
		local rc=${PIPESTATUS[0]}
		if [ "$rc" -eq 0 ]; then summary+=("$name: ok"); else summary+=("$name: FAILED ($rc)"); status=1; fi
	}

	step "machine"
	uname -srm
	[ -r /etc/os-release ] && (. /etc/os-release && echo "${PRETTY_NAME:-$ID}")
	command -v nvidia-smi > /dev/null && nvidia-smi -L
	ls -l /dev/dri 2>&1 | head -5
	[ -c /dev/udmabuf ] && echo "/dev/udmabuf: yes" || echo "/dev/udmabuf: no"
	echo "locked-memory limit (ulimit -l): $(ulimit -l)"
	if [ -z "${VK_DRIVER_FILES:-}" ]; then
		local icd
		icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
			/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json 2>/dev/null | head -1)
		if [ -n "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; fi
	fi
	echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-(loader default)}"
	# The driver's ICD file names its library by name alone: the dynamic loader must find it.
	local libdir
	for libdir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
		ls "$libdir"/libGLX_nvidia.so.* > /dev/null 2>&1 && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$libdir
	done
	echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

	step "Vulkan devices and the extensions the import and output paths use"
	VK_LOADER_DEBUG=${VK_LOADER_DEBUG:-error,driver} check devices devices.log \
		"$carry/vscanout_import_bench" --devices

	step "memory: heaps, types, the largest allocation of each, host-memory imports"
	check memory memory.log "$carry/vscanout_import_bench" --memory

	step "unit tests: zero copy on the driver, the import choice, the render tests"
	check "unit tests" unit.log "$carry/unit_tests" \
		--gtest_filter='ZeroCopy*:Dmabuf*:ImportOrder*:VkDevice*:*RenderTest*'

	step "import bench"
	check "import bench" import-bench.log "$carry/vscanout_import_bench" \
		--seconds "${GPU_BENCH_SECONDS:-0.5}" --size 1080p --size 4k

	step "compose bench"
	check "compose bench" compose-bench.log "$carry/vscanout_compose_bench" "${GPU_COMPOSE_FRAMES:-100}"

	step "summary"
	printf '%s\n' "${summary[@]}" | tee "$out/summary.log"
	return "$status"
}

case ${1:-} in
pack) shift; pack "$@" ;;
run) shift; run "$@" ;;
*) sed -n '2,17p' "$0"; exit 2 ;;
esac
