#!/usr/bin/env bash
# Usage: bench/soak.sh [GENERATIONS] [BINARY]   (defaults: 1000000, build/src/vscanout)
# A soak of the buffer path (issue 11): GENERATIONS generation changes across 4 simulated heads
# (64x64 frames flipped at 2000 Hz, a ring of 8 buffers through --cache 4, so nearly every flip
# misses the cache: an open, an import and an eviction each time), headless, on whatever Vulkan
# device there is. Prints the fd count and the RSS at the start, the middle and the end, and the
# rate; flat fd and RSS figures are the goal. Not part of scripts/test.sh (it takes minutes).
# Environment: SOAK_HEADS (4), SOAK_CACHE (4), SOAK_SAMPLE_S (seconds between samples, 5),
# SOAK_MAX_S (stop after this long even if short of GENERATIONS; 0: no limit).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-1000000}
bin=${2:-$repo/build/src/vscanout}
heads=${SOAK_HEADS:-4}
cache=${SOAK_CACHE:-4}
sample_s=${SOAK_SAMPLE_S:-5}
max_s=${SOAK_MAX_S:-0}
[ -x "$bin" ] || { echo "soak: no vscanout binary at $bin (build it: scripts/build.sh build)" >&2; exit 2; }

rt=$(mktemp -d /tmp/vscanout-soak.XXXXXX)
chmod 700 "$rt"
stats=$rt/stats.jsonl
XDG_RUNTIME_DIR=$rt WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 \
	"$bin" --source "sim:heads=$heads,modes=64x64,fps=2000,buffers=8,cursor=off" --cache "$cache" \
	--stats "$stats" --socket soak >"$rt/stdout" 2>"$rt/stderr" &
pid=$!
cleanup() {
	if kill -0 $pid 2>/dev/null; then kill -TERM $pid; wait $pid || true; fi
	rm -rf "$rt"
}
trap cleanup EXIT
for _ in $(seq 100); do
	grep -q WAYLAND_DISPLAY "$rt/stdout" 2>/dev/null && break
	kill -0 $pid 2>/dev/null || { cat "$rt/stderr" >&2; echo "soak: vscanout failed to start" >&2; exit 1; }
	sleep 0.1
done

# The stats file rewritten on SIGUSR1: "generations imports evictions renders" summed over heads.
counters() {
	rm -f "$stats"
	kill -USR1 $pid
	for _ in $(seq 200); do [ -s "$stats" ] && break; sleep 0.01; done
	python3 - "$stats" <<'PY'
import json, sys
g = i = e = r = 0
for line in open(sys.argv[1]):
    if line.strip():
        s = json.loads(line)
        g += s["generation"]; i += s["imports"]; e += s["evictions"]; r += s["renders"]
print(g, i, e, r)
PY
}
fds() { ls /proc/$pid/fd | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' /proc/$pid/status; }
row() { printf '%-7s %10s gen  %9s imports  %9s evictions  %8s renders  %4s fds  %7s KiB RSS  %6.1f s\n' "$@"; }

sleep 2 # the first imports, the pipelines and the output buffers made
t0=$(date +%s.%N)
read -r g0 i0 e0 r0 < <(counters)
echo "soak: $target generation changes over $heads heads, --cache $cache, vscanout pid $pid"
row start "$g0" "$i0" "$e0" "$r0" "$(fds)" "$(rss_kib)" 0
mid_done=0
while :; do
	sleep "$sample_s"
	kill -0 $pid 2>/dev/null || { echo "soak: vscanout died" >&2; tail -20 "$rt/stderr" >&2; exit 1; }
	read -r g i e r < <(counters)
	now=$(date +%s.%N)
	el=$(echo "$now - $t0" | bc)
	done_gen=$((g - g0))
	if [ $mid_done = 0 ] && [ $done_gen -ge $((target / 2)) ]; then
		row middle "$g" "$i" "$e" "$r" "$(fds)" "$(rss_kib)" "$el"
		mid_done=1
	fi
	if [ $done_gen -ge "$target" ]; then
		row end "$g" "$i" "$e" "$r" "$(fds)" "$(rss_kib)" "$el"
		break
	fi
	if [ "$max_s" != 0 ] && [ "$(echo "$el >= $max_s" | bc)" = 1 ]; then
		row "stopped" "$g" "$i" "$e" "$r" "$(fds)" "$(rss_kib)" "$el"
		echo "soak: stopped after SOAK_MAX_S=$max_s s, short of $target generations"
		break
	fi
done
printf 'soak: %d generations in %.1f s: %.0f a second; %d imports, %d evictions\n' \
	"$done_gen" "$el" "$(echo "$done_gen / $el" | bc -l)" "$((i - i0))" "$((e - e0))"
grep -c 'rejected\|failed' "$rt/stderr" | sed 's/^/soak: error lines in the log: /' || true
