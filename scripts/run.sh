#!/usr/bin/env bash
# The main job: set up, build, and run vscanout with the built-in simulated vGPU.
#   - inside a desktop (WAYLAND_DISPLAY or DISPLAY set): each guest head opens as a window;
#   - otherwise: runs headless for a few seconds, saves a PNG of every head with grim and prints
#     where they are.
# Extra arguments go to vscanout (e.g. --source sim:heads=3,fps=10).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
bin="$root/build/src/vscanout"

if [ -n "${WAYLAND_DISPLAY:-}${DISPLAY:-}" ] && [ -z "${WLR_BACKENDS:-}" ]; then
	exec "$bin" "$@"
fi

seconds=${VSCANOUT_DEMO_SECONDS:-3}
out="$root/out"
mkdir -p "$out"
rt=$(mktemp -d /tmp/vscanout-run.XXXXXX)
chmod 700 "$rt"
log="$out/vscanout.log"
XDG_RUNTIME_DIR=$rt WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 \
	"$bin" --stats "$out/stats.json" --socket vscanout-demo "$@" >"$out/stdout.txt" 2>"$log" &
pid=$!
# Every way this script ends says why vscanout stopped (its log names the signal and this
# script's pid as the sender).
on_exit() {
	local status=$?
	if kill -0 $pid 2>/dev/null; then
		echo "run.sh: stopping early (status $status): sending SIGTERM to vscanout (pid $pid) from pid $$" >&2
		kill -TERM $pid 2>/dev/null || true
	fi
	rm -rf "$rt"
}
trap on_exit EXIT
for _ in $(seq 100); do
	grep -q WAYLAND_DISPLAY "$out/stdout.txt" 2>/dev/null && break
	kill -0 $pid 2>/dev/null || { cat "$log" >&2; echo "vscanout failed to start" >&2; exit 1; }
	sleep 0.1
done
cat "$out/stdout.txt"
sleep "$seconds"
heads=$(XDG_RUNTIME_DIR=$rt WAYLAND_DISPLAY=vscanout-demo wlr-randr | grep -o '^HEAD-[0-9]*' || true)
for h in $heads; do
	XDG_RUNTIME_DIR=$rt WAYLAND_DISPLAY=vscanout-demo grim -o "$h" "$out/$h.png"
	echo "saved $out/$h.png"
done
echo "run.sh: the demo's ${seconds} s are over: sending SIGTERM to vscanout (pid $pid) from pid $$"
kill -TERM $pid
status=0
wait $pid || status=$?
echo "vscanout: $(grep -o 'exiting (status.*' "$log" | tail -1) [exit status $status]"
echo "counters per head: $out/stats.json"
cat "$out/stats.json"
