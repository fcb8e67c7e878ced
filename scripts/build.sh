#!/usr/bin/env bash
# Configures (once) and builds one build directory. Usage: build.sh DIR [meson options...]
set -euo pipefail
dir=$1; shift
cd "$(dirname "$0")/.."
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" -Dwerror=true "$@"
fi
ninja -C "$dir"
