#!/usr/bin/env bash
# Runs every fuzz target (fuzz/meson.build) for SECONDS each (default 60) over its committed
# corpus (fuzz/corpus/<name>/) and a work corpus that keeps what it finds out of git
# (build-fuzz/work/<name>/, or $VSCANOUT_FUZZ_WORK/<name>/), then prints per target: executions,
# exec/s, coverage and the inputs it added, and crashes (the inputs are kept in the work
# directory's artifacts/). Exits non-zero when any target crashed, hung or leaked.
#
#   fuzz/run.sh [SECONDS]     FUZZ_JOBS=N: parallel jobs per target (default: the CPU count)
#   FUZZ_TARGETS="qmp edid"   only these targets
#
# Builds build-fuzz first (clang, -Dfuzz=true) if needed. scripts/test.sh runs it with 15 s and
# one job per target; its last line is "fuzz: N passed, M failed" (one per target).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
work=${VSCANOUT_FUZZ_WORK:-$root/build-fuzz/work}

# One build at a time: several runs (one per target, say) may start together.
build_log=$(mktemp /tmp/vscanout-fuzz-build.XXXXXX)
if ! (
	flock 9
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang-14 CXX=clang++-14 meson setup build-fuzz -Dwerror=true -Dfuzz=true -Dtests=false -Dbench=false \
			-Dbuildtype=debugoptimized || exit 1
	fi
	ninja -C build-fuzz fuzzers
) 9> /tmp/vscanout-fuzz-build.lock > "$build_log" 2>&1; then
	tail -30 "$build_log"
	echo "fuzz: building the fuzzers failed"
	exit 1
fi
rm -f "$build_log"

targets=${FUZZ_TARGETS:-$(sed -n "s/^ *\['\([a-z_]*\)',.*/\1/p" fuzz/meson.build)}
# Per target: the longest input (the QMP reader is fed long lines), and libFuzzer's own limits:
# an input running 10 s is a hang; 2 GiB of memory is a leak or a runaway allocation.
max_len() { case $1 in qmp) echo 20000 ;; options | sim_script) echo 8192 ;; *) echo 4096 ;; esac; }

passed=0 failed=0 total_execs=0
for t in $targets; do
	bin=$root/build-fuzz/fuzz/${t}_fuzz
	dir=$work/$t
	mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/logs"
	rm -f "$dir"/logs/*.log
	touch "$dir/logs/.start" # artifacts newer than this are this run's
	seeds=$root/fuzz/corpus/$t
	[ -d "$seeds" ] || seeds=
	args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")"
		-print_final_stats=1 -artifact_prefix="$dir/artifacts/")
	start=$(date +%s)
	if [ "$jobs" -gt 1 ]; then
		# Each job fuzzes on its own and shares what it finds through the work corpus.
		(cd "$dir/logs" && "$bin" "${args[@]}" -jobs="$jobs" -workers="$jobs" -reload=10 \
			"$dir/corpus" $seeds > parent.out 2>&1)
	else
		"$bin" "${args[@]}" "$dir/corpus" $seeds > "$dir/logs/fuzz-0.log" 2>&1
	fi
	rc=$?
	elapsed=$(($(date +%s) - start))
	execs=0 added=0 cov=0 crashes=0
	for log in "$dir"/logs/fuzz-*.log; do
		[ -f "$log" ] || continue
		e=$(grep -oP '^stat::number_of_executed_units: *\K[0-9]+' "$log" | tail -1)
		a=$(grep -oP '^stat::new_units_added: *\K[0-9]+' "$log" | tail -1)
		c=$(grep -oP '\bcov: \K[0-9]+' "$log" | tail -1)
		execs=$((execs + ${e:-0})); added=$((added + ${a:-0}))
		[ "${c:-0}" -gt "$cov" ] && cov=${c:-0}
		if grep -qE '^==[0-9]+==ERROR|^SUMMARY: |ERROR: libFuzzer|fuzz: invariant broken' "$log"; then
			crashes=$((crashes + 1))
			echo "--- $t: $(basename "$log")"
			grep -E -m1 -A12 '^==[0-9]+==ERROR|ERROR: libFuzzer|fuzz: invariant broken|runtime error' "$log"
		fi
	done
	artifacts=$(find "$dir/artifacts" -type f -newer "$dir/logs/.start" 2>/dev/null | wc -l)
	[ "$artifacts" -gt "$crashes" ] && crashes=$artifacts
	total_execs=$((total_execs + execs))
	per_s=$((execs / (elapsed > 0 ? elapsed : 1)))
	printf 'fuzz %-10s %10d executions in %3d s (%d exec/s, %d jobs), coverage %d, %d new inputs, %d crashes\n' \
		"$t" "$execs" "$elapsed" "$per_s" "$jobs" "$cov" "$added" "$crashes"
	if [ "$crashes" -eq 0 ] && [ "$rc" -eq 0 ] && [ "$execs" -gt 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		[ "$artifacts" -gt 0 ] && find "$dir/artifacts" -type f -newer "$dir/logs/.start" | sed 's/^/  reproducer: /'
	fi
done
echo "fuzz: $total_execs executions in all"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
