#!/usr/bin/env bash
# The Debian package, as a user gets it: built from a copy of the source tree with Debian's own
# tools (dpkg-buildpackage -us -uc -b, debhelper + meson), its version, file list and dependencies
# checked, lintian, then installed on this machine with apt-get, the installed vscanout run
# (--version, a headless run with the simulated vGPU), its man page rendered, its example unit
# verified by systemd, and the package removed again.
#
# The build runs in a scratch directory (a copy of the tree without build directories or .git), so
# the repository's build dirs are never touched. Where a vscanout package is installed already, it
# is left alone: the package is unpacked into a scratch root instead and checked there.
#
# Prints `RESULT: PASS|FAIL <check>[: <reason>]` per check, `package: <step> <time>` per step, and
# last `package: N passed, M failed` (scripts/test.sh counts it). Exits 1 when a check failed.
# Needs root (or sudo) to install; scripts/setup.sh installs the tools (debhelper, lintian, scdoc,
# man-db, fakeroot).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
label=package
passed=0 failed=0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

now() { date +%s%N; }
secs() { local d=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((d / 1000)) $((d % 1000)); }
pass() { echo "RESULT: PASS $1"; passed=$((passed + 1)); }
fail() { echo "RESULT: FAIL $1: $2"; failed=$((failed + 1)); }
report() { echo "$label: $passed passed, $failed failed"; }
abort() { fail "$1" "$2"; report; exit 1; }

work=$(mktemp -d /tmp/vscanout-package.XXXXXX)
chmod 755 "$work" # apt reads the .deb as _apt
installed_here=false
cleanup() {
	if $installed_here; then
		echo "$label: removing the package after an interrupted run"
		$SUDO apt-get remove --purge -y -q vscanout > /dev/null 2>&1
	fi
	# VSCANOUT_PACKAGE_KEEP=1 keeps the scratch directory (the build log, the .deb, lintian's log).
	if [ "${VSCANOUT_PACKAGE_KEEP:-0}" = 1 ]; then echo "$label: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The version meson gives the project (meson's own parser, not debian/rules' reading of it).
version=$(cd "$repo" && meson introspect --projectinfo meson.build |
	/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])') ||
	abort "meson version" "meson introspect --projectinfo failed"
arch=$(dpkg --print-architecture)
echo "$label: vscanout $version for $arch, in $work"

# 1. A copy of the tree: what git would check out plus the wlroots subproject's source
#    (git-ignored), without build directories, package build output or .git.
t=$(now)
src=$work/vscanout-$version
mkdir "$src"
tar -C "$repo" -cf - \
	--exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./out --exclude=./.gl --exclude=./.whl \
	--exclude=./subprojects/packagecache --exclude=__pycache__ --exclude='*.pyc' \
	--exclude=./debian/build --exclude=./debian/vscanout --exclude=./debian/.debhelper \
	--exclude=./debian/files --exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp . |
	tar -C "$src" -xf - || abort "source copy" "tar failed"
echo "$label: source copy $(secs "$t") ($(du -sh "$src" | cut -f1))"

# 2. Build dependencies (debian/control) present: dpkg-buildpackage would refuse otherwise.
if (cd "$src" && dpkg-checkbuilddeps -Pnocheck 2>&1); then
	pass "build dependencies"
else
	fail "build dependencies" "dpkg-checkbuilddeps: unmet (scripts/setup.sh installs them)"
fi

# 3. The build. nocheck: scripts/test.sh runs the unit tests itself (a build without it runs them
#    too, through meson test).
t=$(now)
if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b -Pnocheck) \
	> "$work/build.log" 2>&1; then
	pass "dpkg-buildpackage -us -uc -b"
	echo "$label: dpkg-buildpackage $(secs "$t")"
else
	tail -40 "$work/build.log"
	abort "dpkg-buildpackage -us -uc -b" "failed after $(secs "$t") (log above)"
fi

deb=$work/vscanout_${version}_${arch}.deb
changes=$work/vscanout_${version}_${arch}.changes
[ -f "$deb" ] || abort "package file" "no $(basename "$deb"); made: $(cd "$work" && echo *.deb)"
deb_version=$(dpkg-deb -f "$deb" Version)
if [ "$deb_version" = "$version" ]; then
	pass "version is meson's ($version)"
else
	fail "version is meson's" "the package says $deb_version, meson $version"
fi

# 4. The file list: the binary, the man page, the example unit; nothing of wlroots (no headers,
#    no .pc, no static library: the subproject is linked in, not installed).
files=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
missing=()
for f in /usr/bin/vscanout /usr/share/man/man1/vscanout.1.gz /usr/share/doc/vscanout/examples/vscanout-kiosk.service \
	/usr/share/doc/vscanout/copyright /usr/share/doc/vscanout/changelog.gz; do
	grep -qx "$f" <<< "$files" || missing+=("$f")
done
if [ ${#missing[@]} -eq 0 ]; then pass "file list has the binary, man page and unit"; else fail "file list" "missing ${missing[*]}"; fi
stray=$(grep -E '^/usr/include/|\.pc$|\.a$|wlroots|^/usr/lib/[^/]+/lib' <<< "$files" || true)
if [ -z "$stray" ]; then pass "no wlroots files in the package"; else fail "no wlroots files in the package" "$(tr '\n' ' ' <<< "$stray")"; fi

# 5. Run-time dependencies: the shared libraries (shlibs) and the Vulkan driver, which is loaded at
#    run time and not linked.
depends=$(dpkg-deb -f "$deb" Depends)
echo "$label: Depends: $depends"
missing=()
for d in libvulkan1 libwayland-server0 libxkbcommon0 libpixman-1-0 libsystemd0 libdrm2 libxxhash0 'mesa-vulkan-drivers | vulkan-icd'; do
	grep -qF "$d" <<< "$depends" || missing+=("$d")
done
if ! pkg-config --exists wlroots-0.18; then # the static subproject: its own shared dependencies
	for d in libinput10 libseat1 libdisplay-info libxcb1; do grep -qF "$d" <<< "$depends" || missing+=("$d"); done
fi
if [ ${#missing[@]} -eq 0 ]; then pass "Depends"; else fail "Depends" "lacks ${missing[*]}"; fi

# 6. lintian: no errors (warnings are printed, not counted).
t=$(now)
lintian --fail-on error --tag-display-limit 0 "$changes" > "$work/lintian.log" 2>&1
rc=$?
sed 's/^/lintian: /' "$work/lintian.log"
if [ $rc -eq 0 ]; then
	pass "lintian: no errors ($(grep -c '^W:' "$work/lintian.log") warning(s))"
elif grep -q '^E:' "$work/lintian.log"; then
	fail "lintian" "$(grep -c '^E:' "$work/lintian.log") error(s)"
else
	fail "lintian" "exit status $rc without an error tag: it did not run (log above)"
fi
echo "$label: lintian $(secs "$t")"

# 7. Install it: on this machine with apt-get (its dependencies resolved by apt; they are all
#    installed already by scripts/setup.sh, the libraries being the build dependencies' and the
#    Vulkan driver setup's own), or, where a vscanout package is installed already, into a scratch
#    root. (apt-get's --no-download cannot install a local .deb: "Pathname to install is not
#    absolute".)
root=""
if dpkg-query -W -f='${Status}\n' vscanout 2>/dev/null | grep -q ' installed$'; then
	echo "$label: a vscanout package is installed here already: checking an unpacked copy, apt only simulates"
	if apt-get install -s -q "$deb" > "$work/apt.log" 2>&1; then pass "apt-get resolves its dependencies"
	else fail "apt-get resolves its dependencies" "$(tail -3 "$work/apt.log")"; fi
	root=$work/root
	dpkg-deb -x "$deb" "$root"
else
	if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" > "$work/apt.log" 2>&1; then
		installed_here=true
		pass "apt-get install ./$(basename "$deb")"
	else
		cat "$work/apt.log"
		abort "apt-get install ./$(basename "$deb")" "failed (log above)"
	fi
	listed=$(dpkg -L vscanout)
	if grep -qx /usr/bin/vscanout <<< "$listed" && [ -x /usr/bin/vscanout ]; then pass "installed /usr/bin/vscanout"
	else fail "installed /usr/bin/vscanout" "not there"; fi
fi
bin=$root/usr/bin/vscanout
page=$root/usr/share/man/man1/vscanout.1.gz
unit=$root/usr/share/doc/vscanout/examples/vscanout-kiosk.service

# 8. The installed binary.
out=$("$bin" --version 2>&1)
if [[ $out =~ ^vscanout\ $version\ \(wlroots\ 0\.18\.[0-9]+\)$ ]]; then pass "vscanout --version: $out"
else fail "vscanout --version" "'$out'"; fi

# A headless run with the simulated vGPU: the installed binary finds its Vulkan driver, makes its
# socket, draws, and exits 0 on SIGTERM with its stats written.
rt=$work/run
mkdir -m 700 "$rt"
WLR_BACKENDS=headless XDG_RUNTIME_DIR=$rt "$bin" --source sim:heads=1,fps=0 --stats "$work/stats.jsonl" \
	> "$work/run.log" 2>&1 &
pid=$!
ready=false committed=false
for _ in $(seq 300); do # the ready line, then head 0 committed (stats on SIGUSR1)
	kill -0 $pid 2>/dev/null || break
	if ! $ready; then grep -q 'head(s) from' "$work/run.log" && ready=true
	else
		kill -USR1 $pid
		sleep 0.1
		grep -qs '"head": 0, .*"commits": [1-9]' "$work/stats.jsonl" && { committed=true; break; }
	fi
	sleep 0.1
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
if $committed && [ $rc -eq 0 ]; then
	pass "installed vscanout runs headless (exit 0, head 0 committed)"
else
	tail -20 "$work/run.log"
	fail "installed vscanout runs headless" "ready $ready, committed $committed, exit status $rc"
fi

# 9. The man page: found by man (when installed), renders without a warning at 80 columns.
if [ -z "$root" ]; then
	found=$(man -w vscanout 2>&1)
	if [ "$found" = /usr/share/man/man1/vscanout.1.gz ]; then pass "man -w vscanout"; else fail "man -w vscanout" "$found"; fi
fi
MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" > "$work/man.txt" 2> "$work/man.err"
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$work/man.err" ] && grep -q '^ *vscanout - show a virtual GPU' "$work/man.txt" &&
	grep -q -- '--allow-vt-switch' "$work/man.txt"; then
	pass "man -l renders the installed page without warnings ($(wc -l < "$work/man.txt") lines)"
else
	fail "man -l the installed page" "status $rc: $(head -5 "$work/man.err")"
fi

# 10. The example unit: this install's paths, and systemd takes it.
if grep -qx "ExecStart=/usr/bin/vscanout .*" "$unit" && ! grep -q '@[a-z]*@' "$unit"; then
	pass "example unit runs /usr/bin/vscanout"
else
	fail "example unit paths" "$(grep -E 'ExecStart|@' "$unit")"
fi
sed "s|^ExecStart=/usr/bin/vscanout|ExecStart=$bin|" "$unit" > "$work/vscanout-kiosk.service"
# Installed, its Documentation=man:vscanout(1) is checked too; unpacked, it cannot be.
man_opt=--man=yes
[ -z "$root" ] || man_opt=--man=no
if err=$(systemd-analyze verify $man_opt "$work/vscanout-kiosk.service" 2>&1) && [ -z "$err" ]; then
	pass "systemd-analyze verify the example unit"
else fail "systemd-analyze verify the example unit" "$err"; fi

# 11. Remove it: nothing of it stays.
if $installed_here; then
	if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q vscanout > "$work/remove.log" 2>&1 &&
		! dpkg-query -W -f='${Status}\n' vscanout 2>/dev/null | grep -q ' installed$' &&
		[ ! -e /usr/bin/vscanout ] && [ ! -e /usr/share/man/man1/vscanout.1.gz ] && [ ! -e /usr/share/doc/vscanout ]; then
		installed_here=false
		pass "apt-get remove --purge vscanout"
	else
		fail "apt-get remove --purge vscanout" "$(tail -3 "$work/remove.log")"
	fi
fi

report
[ "$failed" -eq 0 ]
