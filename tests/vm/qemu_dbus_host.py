#!/usr/bin/python3
"""The QEMU `-display dbus` VM test, host side: a real QEMU shows a real guest's virtio-gpu heads
on a private D-Bus, and vscanout (`--source qemu`, on this host) shows them.

usage: qemu_dbus_host.py [--bin VSCANOUT] [--work DIR] [--plumbing-only | --no-plumbing]
                         [--vscanout-source SPEC] [--vm-timeout SECONDS] [--deadline SECONDS]
(tests/vm/qemu_dbus_test.sh runs it; see tests/vm/README.md.)

The VM (tests/vm/run.sh, module groups kms,input): QEMU 7.2 with `-display dbus` on a private
dbus-daemon, `-device virtio-vga,id=vga0,max_outputs=2,xres=1024,yres=768,edid=off` (the guest
forces Virtual-2 on with `video=Virtual-2:1024x768e`), two virtio tablets (the first unbound: it
serves console 0 and makes QEMU's mouse absolute; the second bound to console 1 with
`display=vga0,head=1`, so the guest can tell the heads apart) and a virtio keyboard. The guest
runs tests/vm/qemu_guest.py: frame 0 of the sim pattern on each head through KMS dumb buffers,
the sim cursor (hotspot (4,4) at (100,100)) through DRM_IOCTL_MODE_CURSOR2, and a log of its
input events on the serial console; the host steers it through $VM_OUT/ctl.

Checks, each printed as `RESULT: PASS|FAIL <check>: <reason>`, last line `qemu vm: N passed,
M failed`:
- qemu: ... (the plumbing, with a D-Bus client of our own, no vscanout: tests/vm/qemu_dbus_client.py)
  consoles, frames, CursorDefine/MouseSet, no idle traffic, Keyboard.Press and
  Mouse.SetAbsPosition/Press reaching the guest, a mode change (Scanout) and a clipped
  DIRTYFB (Update);
- vscanout: ... vscanout headless with --source qemu: two heads, grim captures equal to the
  pattern (exact), the guest cursor composited at its place (MouseSet is the image's top-left
  for virtio-gpu), cursor motion, a static guest costs no renders or commits, the cursor hidden,
  a mode change, a partial damage, keys typed with wtype (virtual-keyboard protocol) reach the
  guest, QEMU killed -> no signal, a new QEMU is picked up, pointer and buttons through vscanout
  nested in a headless sway (1:1 and scaled windows), QEMU's clean exit, --once, SIGTERM.
Every wait has a deadline; the whole run has one too (--deadline, default 170 s).
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
sys.path.insert(0, HERE)
import vm_checks  # noqa: E402
from vm_checks import Results  # noqa: E402
from vscanout_pixels import (Image, describe_difference, guest_frame, no_signal_problems, parse_ppm,  # noqa: E402
                             parse_randr, place_frame)
from vscanout_proc import (READY_RX, change_env, kill_process, read_stats, read_text,  # noqa: E402
                           request_stats, settle_stats, terminate_process, vscanout_env)

MODE = (1024, 768)
NOBODY = 65534
# QEMU's virtio-pci devices at fixed addresses, so that the guest can tell the tablets apart.
TABLET0_PCI, TABLET1_PCI, KEYBOARD_PCI = "0000:00:10.0", "0000:00:11.0", "0000:00:12.0"
QEMU_DEVICES = ("-device virtio-vga,id=vga0,max_outputs=2,xres=1024,yres=768,edid=off "
                "-device virtio-tablet-pci,addr=0x10 "
                "-device virtio-tablet-pci,display=vga0,head=1,addr=0x11 "
                "-device virtio-keyboard-pci,addr=0x12")


# The checks after vscanout's first QEMU, in order (reported as not run when vscanout did not start).
LATER = ["vscanout: QEMU killed -> both heads show no signal",
         "vscanout: a new QEMU is picked up (frames and cursor, exact)",
         "vscanout nested in sway: pointer motion reaches the guest's tablet of each head (1:1 windows)",
         "vscanout nested in sway: buttons reach the guest",
         "vscanout nested in sway: pointer through a scaled, letterboxed window",
         "vscanout: QEMU's clean exit -> both heads show no signal",
         "vscanout --once: exits when QEMU exits",
         "vscanout: SIGTERM -> exit 0 with stats",
         "vscanout nested in sway: the guest cursor becomes the parent's pointer image (absolute pointer)"]


def say(msg):
    vm_checks.say(msg, "qemu-test ")


class Deadline(Exception):
    pass


STOP = object()  # a predicate's answer to wait_until: give up now


def wait_until(predicate, timeout, interval=0.05):
    """predicate()'s first truthy value; None after timeout seconds or when it answers STOP."""
    end = time.monotonic() + timeout
    while True:
        v = predicate()
        if v is STOP:
            return None
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def cursor_frame(w, h, head, top_left=None, n=0):
    """Frame n of a head with the sim cursor's 16x16 white square at top_left (None: no cursor)."""
    img = guest_frame(w, h, head, n, cursor=False)
    if top_left is None:
        return img
    data = bytearray(img.data)
    x0, y0 = max(0, top_left[0]), max(0, top_left[1])
    x1, y1 = min(w, top_left[0] + 16), min(h, top_left[1] + 16)
    for y in range(y0, y1):
        data[3 * (y * w + x0):3 * (y * w + x1)] = b"\xff" * (3 * (x1 - x0))
    return Image(w, h, data)


def damaged_frame(w, h, head, rect, n_old=0, n_new=5, top_left=None):
    """Frame n_old with the rectangle (x, y, w, h) from frame n_new (what the guest's DIRTYFB with
    one clip leaves on the host), and the cursor square at top_left (None: no cursor)."""
    data = bytearray(cursor_frame(w, h, head, None, n_old).data)
    new = guest_frame(w, h, head, n_new, cursor=False).data
    x, y, rw, rh = rect
    for yy in range(y, y + rh):
        data[3 * (yy * w + x):3 * (yy * w + x + rw)] = new[3 * (yy * w + x):3 * (yy * w + x + rw)]
    if top_left is not None:
        x0, y0 = max(0, top_left[0]), max(0, top_left[1])
        x1, y1 = min(w, top_left[0] + 16), min(h, top_left[1] + 16)
        for yy in range(y0, y1):
            data[3 * (yy * w + x0):3 * (yy * w + x1)] = b"\xff" * (3 * (x1 - x0))
    return Image(w, h, data)


DAMAGE = (300, 200, 200, 120)  # the clip of the damage checks: away from the cursor at (96, 96)

# --------------------------------------------------------------------------------------------
# the private bus


class Bus:
    def __init__(self, work):
        self.proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1",
                                      "--address=unix:dir=%s" % work],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode().strip() if r else ""
        if not line:
            self.stop()
            raise RuntimeError("dbus-daemon printed no address")
        self.address = line

    def stop(self):
        terminate_process(self.proc)


# --------------------------------------------------------------------------------------------
# the VM


class VM:
    """tests/vm/run.sh with QEMU on the private bus; its serial console read line by line."""

    def __init__(self, name, work, bus, timeout):
        self.name = name
        self.out = os.path.join(work, name)
        self.pidfile = os.path.join(work, name + ".qemu.pid")
        self.console = os.path.join(work, name + ".console.log")
        self.lines = []
        self.lock = threading.Lock()
        self.qemu_pid = None
        env = dict(os.environ)
        env.update(DBUS_SESSION_BUS_ADDRESS=bus.address, VM_OUT=self.out, VM_CONSOLE=self.console,
                   VM_TIMEOUT=str(timeout), VM_MODULES="kms,input",
                   VM_KERNEL_ARGS="video=Virtual-2:%dx%de %s" % (MODE[0], MODE[1], os.environ.get("VM_KERNEL_ARGS", "")),
                   VM_QEMU_ARGS="-display dbus %s -pidfile %s %s" % (QEMU_DEVICES, self.pidfile,
                                                                     os.environ.get("VM_QEMU_ARGS", "")))
        argv = [os.path.join(HERE, "run.sh"), os.path.join(HERE, "qemu_guest.py"), "--mode", "%dx%d" % MODE,
                "--tablet", "%s=0" % TABLET0_PCI, "--tablet", "%s=1" % TABLET1_PCI]
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
            with self.lock:
                self.lines.append((time.monotonic(), line))
            if os.environ.get("QEMU_TEST_VERBOSE") or not line.startswith("GUEST-INFO connector"):
                print("  [%s] %s" % (self.name, line), flush=True)

    def mark(self):
        with self.lock:
            return len(self.lines)

    def find(self, pattern, since=0):
        rx = re.compile(pattern)
        with self.lock:
            for i in range(since, len(self.lines)):
                m = rx.search(self.lines[i][1])
                if m:
                    return i, m
        return None

    def wait_line(self, pattern, timeout, since=0):
        return wait_until(lambda: self.find(pattern, since) or (None if self.proc.poll() is None else STOP),
                          timeout) or None

    def guest_lines(self, prefix, since):
        with self.lock:
            return [line for _, line in self.lines[since:] if line.startswith(prefix)]

    def wait_ready(self, timeout):
        hit = self.wait_line(r"^GUEST-READY |^GUEST-ERROR", timeout)
        if hit and hit[1].group(0).startswith("GUEST-READY"):
            self.t_ready = time.monotonic()
            try:
                with open(self.pidfile) as f:
                    self.qemu_pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
            return True
        return False

    def ctl(self, command, timeout=10):
        """One command for qemu_guest.py; True once it acknowledged it."""
        since = self.mark()
        with open(os.path.join(self.out, "ctl"), "a") as f:
            f.write(command + "\n")
        hit = self.wait_line(r"^GUEST-(ACK|NAK) " + re.escape(command) + r"\b", timeout, since)
        return bool(hit) and hit[1].group(1) == "ACK"

    def wait_input(self, expected, since, timeout):
        """Waits until the guest's GUEST-INPUT lines after `since` contain the regexes of `expected`
        in order; returns (ok, the input lines seen)."""
        def match():
            seen = [line[len("GUEST-INPUT "):] for line in self.guest_lines("GUEST-INPUT ", since)]
            i = 0
            for line in seen:
                if i < len(expected) and re.fullmatch(expected[i], line):
                    i += 1
            return (True, seen) if i == len(expected) else None

        r = wait_until(match, timeout)
        if r:
            return r
        return False, [line[len("GUEST-INPUT "):] for line in self.guest_lines("GUEST-INPUT ", since)]

    def alive(self):
        return self.proc.poll() is None

    def kill_qemu(self, sig=signal.SIGKILL):
        if self.qemu_pid:
            try:
                os.kill(self.qemu_pid, sig)
                return True
            except ProcessLookupError:
                return False
        return False

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.kill_qemu(signal.SIGKILL)
            if self.wait_exit(10) is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait_exit(5)
        self.reader.join(2)


# --------------------------------------------------------------------------------------------
# vscanout


class Vscanout:
    _n = 0

    def __init__(self, binary, bus, source, args=(), env=None, label=None):
        Vscanout._n += 1
        self.label = label or "vscanout#%d" % Vscanout._n
        self.dir = tempfile.mkdtemp(prefix="vsc-q-")
        self.socket = "vsc-q-%d-%d" % (os.getpid(), Vscanout._n)
        self.stats_path = os.path.join(self.dir, "stats.jsonl")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.argv = [binary, "--source", source, "--stats", self.stats_path, "--socket", self.socket] + list(args)
        self.env = change_env(vscanout_env(("WLR_RENDERER",), WLR_BACKENDS="headless", XDG_RUNTIME_DIR=self.dir,
                                           WLR_LIBINPUT_NO_DEVICES="1", DBUS_SESSION_BUS_ADDRESS=bus.address), env)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        self.pid = self.proc.pid
        self.heads = None

    def text(self, which="stderr"):
        return read_text(self.stderr_path if which == "stderr" else self.stdout_path)

    def tail(self, lines=12):
        return " | ".join(self.text().strip().splitlines()[-lines:])

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=15):
        """(True, heads) once the WAYLAND_DISPLAY line is out; (False, why) otherwise."""
        m = wait_until(lambda: READY_RX.search(self.text("stdout")) or (None if self.alive() else STOP), timeout)
        if m:
            self.heads = int(m.group(1))
            return True, self.heads
        if not self.alive():
            return False, "exited with status %s: %s" % (self.proc.returncode, self.tail(6))
        return False, "no WAYLAND_DISPLAY line within %d s: %s" % (timeout, self.tail(6))

    def client_env(self):
        env = {k: v for k, v in self.env.items()}
        env["WAYLAND_DISPLAY"] = self.socket
        return env

    def capture(self, head):
        path = os.path.join(self.dir, "cap-%d.ppm" % head)
        r = subprocess.run(["grim", "-t", "ppm", "-o", "HEAD-%d" % head, path], env=self.client_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        if r.returncode != 0:
            raise RuntimeError("grim -o HEAD-%d failed (%d): %s" % (head, r.returncode,
                                                                   r.stderr.decode(errors="replace").strip()))
        with open(path, "rb") as f:
            return parse_ppm(f.read())

    def wait_capture(self, head, accept, timeout):
        """Captures HEAD-<head> until accept(img) returns None (no problem); returns (ok, last
        problem, last image)."""
        last = ["no capture"]
        img = None

        def ok():
            nonlocal img
            if not self.alive():
                last[0] = "vscanout exited with status %s: %s" % (self.proc.returncode, self.tail(6))
                return STOP
            try:
                img = self.capture(head)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                last[0] = str(e)
                return None
            last[0] = accept(img)
            return last[0] is None

        r = wait_until(ok, timeout, interval=0.2)
        return bool(r), last[0], img

    def randr(self):
        r = subprocess.run(["wlr-randr"], env=self.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        if r.returncode != 0:
            raise RuntimeError("wlr-randr failed: %s" % r.stderr.decode(errors="replace").strip())
        return parse_randr(r.stdout.decode(errors="replace"))

    def stats(self, timeout=5):
        def within(rewritten):
            if not wait_until(rewritten, timeout, interval=0.01):
                raise RuntimeError("the stats file was not rewritten within %d s of SIGUSR1" % timeout)

        return request_stats(self.stats_path, lambda: self.proc.send_signal(signal.SIGUSR1), within)

    def read_stats(self):
        return read_stats(self.stats_path)

    def settle(self, quiet=0.4, timeout=8):
        return settle_stats(self.stats, quiet, timeout,
                            lambda *_: RuntimeError("counters never settled within %d s" % timeout))

    def stop(self, timeout=10):
        """SIGTERM; the exit status (None: still running after timeout, then killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        kill_process(self.proc)

    def cleanup(self, keep_to=None):
        self.kill()
        for f in (self._out, self._err):
            f.close()
        if keep_to:
            for name in ("stdout", "stderr", "stats.jsonl"):
                src = os.path.join(self.dir, name)
                if os.path.exists(src):
                    shutil.copy(src, os.path.join(keep_to, "%s.%s" % (self.label, name)))
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# a headless sway with a pointer (for vscanout nested)


class Sway:
    """sway 1.7 headless, pixman, one output; as root it runs as nobody (sway refuses root). A
    headless sway has no input device: wl_virtual_pointer.py gives its seat a pointer."""

    def __init__(self, size, config_lines):
        self.dir = tempfile.mkdtemp(prefix="vsc-q-sway-")
        self.runtime = os.path.join(self.dir, "run")
        home = os.path.join(self.dir, "home")
        os.mkdir(self.runtime, 0o700)
        os.mkdir(home, 0o700)
        self.size = size
        config = os.path.join(self.runtime, "config")
        with open(config, "w") as f:
            f.write("\n".join(["output HEADLESS-1 resolution %dx%d position 0 0" % size, "xwayland disable"]
                              + list(config_lines)) + "\n")
        argv = ["sway", "-c", config]
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o711)
            for p in (self.runtime, home, config):
                os.chown(p, NOBODY, NOBODY)
            argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + argv
        self.log_path = os.path.join(self.dir, "sway.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env={"XDG_RUNTIME_DIR": self.runtime, "HOME": home, "PATH": "/usr/bin:/bin",
                                                "WLR_BACKENDS": "headless", "WLR_LIBINPUT_NO_DEVICES": "1",
                                                "WLR_RENDERER": "pixman", "WLR_HEADLESS_OUTPUTS": "1"},
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        self.socket = self.swaysock = None
        self.pointer = None

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                return STOP
            names = os.listdir(self.runtime)
            way = [n for n in names if re.fullmatch(r"wayland-\d+", n)]
            ipc = [n for n in names if n.startswith("sway-ipc.") and n.endswith(".sock")]
            if not way or not ipc:
                return None
            self.socket = way[0]
            self.swaysock = os.path.join(self.runtime, ipc[0])
            outs = self.msg("-t", "get_outputs", check=False)
            return bool(outs) and any(o.get("active") for o in outs)

        if not wait_until(ready, timeout):
            raise RuntimeError("sway did not come up: %s" % self.log_tail())
        self.pointer = subprocess.Popen([sys.executable, os.path.join(HERE, "wl_virtual_pointer.py")],
                                        env=self.client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        r, _, _ = select.select([self.pointer.stdout], [], [], 10)
        line = self.pointer.stdout.readline().strip() if r else ""
        if line != "ready":
            raise RuntimeError("wl_virtual_pointer.py: %r" % line)

    def point(self, command):
        """A command for wl_virtual_pointer.py (move X Y, press CODE, release CODE), waited for."""
        if command.startswith("move "):
            command += " %d %d" % self.size  # absolute motion over the whole layout: 1:1
        self.pointer.stdin.write(command + "\n")
        self.pointer.stdin.flush()
        r, _, _ = select.select([self.pointer.stdout], [], [], 10)
        answer = self.pointer.stdout.readline().strip() if r else ""
        if answer != "ok":
            raise RuntimeError("wl_virtual_pointer.py %r: %r" % (command, answer))

    def log_tail(self, n=8):
        try:
            with open(self.log_path, "rb") as f:
                return " | ".join(f.read().decode(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return ""

    def client_env(self):
        return {"XDG_RUNTIME_DIR": self.runtime, "WAYLAND_DISPLAY": self.socket, "PATH": "/usr/bin:/bin"}

    def msg(self, *args, check=True):
        r = subprocess.run(["swaymsg", "-s", self.swaysock, "-r"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        try:
            reply = json.loads(r.stdout)
        except ValueError:
            if check:
                raise RuntimeError("swaymsg %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
            return None
        if check and (r.returncode != 0 or (isinstance(reply, list) and not all(x.get("success") for x in reply))):
            raise RuntimeError("swaymsg %s failed: %s" % (" ".join(args), reply))
        return reply

    def windows(self):
        """[(title, content rect {x, y, width, height})] of every view."""
        found = []

        def walk(node):
            if node.get("pid") is not None or node.get("shell"):
                r, wr = node["rect"], node["window_rect"]
                found.append((node.get("name") or "", {"x": r["x"] + wr["x"], "y": r["y"] + wr["y"],
                                                        "width": wr["width"], "height": wr["height"]}))
            for child in node.get("nodes", []) + node.get("floating_nodes", []):
                walk(child)

        walk(self.msg("-t", "get_tree"))
        return found

    def stop(self):
        if self.pointer and self.pointer.poll() is None:
            self.pointer.stdin.close()
            try:
                self.pointer.wait(5)
            except subprocess.TimeoutExpired:
                self.pointer.kill()
        terminate_process(self.proc)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the checks


class Test:
    def __init__(self, args):
        self.args = args
        self.res = Results()
        self.work = args.work
        self.bus = None
        self.vms = []
        self.vs = []  # every vscanout started, for the clean-up
        self.sway = None
        self.vm = None
        self.main = None  # the headless vscanout that lives through both QEMUs
        self.pointed = []

    def rec(self, ok, name, reason):
        return self.res.record(ok, name, reason)

    def not_run(self, names, why):
        for n in names:
            self.rec(False, n, "not run: " + why)

    def boot(self, name):
        t = time.monotonic()
        vm = VM(name, self.work, self.bus, self.args.vm_timeout)
        self.vms.append(vm)
        self.vm = vm
        ok = vm.wait_ready(60)
        say("%s: %s after %.1f s" % (name, "guest ready" if ok else "guest NOT ready", time.monotonic() - t))
        if not ok:
            # What there is to know where CI keeps no files: the console's last lines, whether
            # QEMU still runs, and what each running vscanout logged last.
            with vm.lock:
                tail = [line for _, line in vm.lines[-15:]]
            say("%s: QEMU %s; its console's last lines:\n    %s" % (
                name, "running" if vm.proc.poll() is None else "ended (%s)" % vm.proc.returncode,
                "\n    ".join(tail) or "(none)"))
            for v in self.vs:
                if v.alive():
                    say("vscanout %s still runs; its log ends:\n%s" % (v.label, v.tail(8)))
        return ok

    # -- plumbing: QEMU and the guest seen through our own D-Bus client ---------------------------

    def plumbing(self):
        from qemu_dbus_client import Display, DBusError
        vm = self.vm
        names = ["qemu: two Graphic consoles, Head 0 and 1", "qemu: the guest's frames in Scanout",
                 "qemu: CursorDefine and MouseSet from the guest's CURSOR2", "qemu: a static guest sends nothing",
                 "qemu: Keyboard.Press reaches the guest", "qemu: Mouse.SetAbsPosition and Press reach the guest",
                 "qemu: a guest mode change is a Scanout, a DIRTYFB clip an Update of that rectangle"]
        try:
            d = Display(self.bus.address)
        except DBusError as e:
            self.not_run(names, "cannot connect to the bus: %s" % e)
            return
        try:
            self._plumbing(d, vm, names)
        except Exception as e:  # noqa: BLE001 - the vscanout checks still run
            self.rec(False, "qemu: the D-Bus client ran to the end", "%s: %s" % (type(e).__name__, e))
        finally:
            d.close()

    def _plumbing(self, d, vm, names):
        cons = d.consoles()
        graphic = {c["Head"]: c for c in cons if c.get("Type") == "Graphic"}
        desc = ", ".join("Console_%d %s Head %d %dx%d %s" % (c["id"], c.get("Type"), c.get("Head", -1), c.get("Width", 0),
                                                           c.get("Height", 0), c.get("Label")) for c in cons)
        self.rec(sorted(graphic) == [0, 1], names[0], desc)
        lst = {h: d.listen(graphic[h]["id"]) for h in sorted(graphic)}

        def frames_ok():
            return all(l.data is not None and l.image() is not None and
                       describe_difference(l.image(), guest_frame(MODE[0], MODE[1], h, 0, cursor=False)) is None
                       for h, l in lst.items())
        ok = d.wait(frames_ok, 5)
        why = []
        for h, l in lst.items():
            img = l.image()
            diff = "no Scanout" if img is None else describe_difference(img, guest_frame(MODE[0], MODE[1], h, 0,
                                                                                         cursor=False))
            why.append("head %d: %s" % (h, "frame 0 exact (%s)" % l.events[0][2] if diff is None else diff))
        self.rec(ok, names[1], "; ".join(why))
        late = ["head %d: %s" % (h, "CursorDefine %dx%d hot %d,%d" % l.cursor[:4] if l.cursor else "no cursor")
                for h, l in lst.items()]
        say("a listener registered after the guest set its cursor got: " + "; ".join(late))

        # The cursor: defined again by the guest now that we listen (QEMU 7.2 gives a late
        # listener no cursor), then moved.
        t = time.monotonic()
        acks = all(vm.ctl("cursor %d" % h) for h in lst)
        got = d.wait(lambda: all(l.cursor and l.mouse and l.count("CursorDefine", t) for l in lst.values()), 5)
        want_img = bytearray(64 * 64 * 4)
        for y in range(16):
            want_img[y * 256:y * 256 + 64] = b"\xff" * 64
        problems = []
        for h, l in lst.items():
            if not l.cursor:
                problems.append("head %d: no CursorDefine" % h)
                continue
            w, hh, hx, hy, data = l.cursor
            if (w, hh, hx, hy) != (64, 64, 4, 4):
                problems.append("head %d: CursorDefine %dx%d hot %d,%d, expected 64x64 hot 4,4" % (h, w, hh, hx, hy))
            if data != bytes(want_img):
                problems.append("head %d: cursor pixels differ from the sim cursor" % h)
            if l.mouse != (96, 96, 1):
                problems.append("head %d: MouseSet %s, expected (96, 96, 1): the image's top-left" % (h, l.mouse))
        t = time.monotonic()
        moved = vm.ctl("move 0 300 200") and d.wait(lambda: lst[0].count("MouseSet", t), 5)
        if lst[0].mouse != (296, 196, 1):
            problems.append("after `move 0 300 200` (hotspot) MouseSet is %s, expected (296, 196, 1)" % (lst[0].mouse,))
        vm.ctl("move 0 100 100")
        d.wait(lambda: lst[0].mouse == (96, 96, 1), 5)
        self.rec(acks and got and moved and not problems, names[2],
                 "; ".join(problems) or "64x64 ARGB, hot (4,4), pixels exact; MouseSet (96,96,1) = the image's "
                 "top-left (hotspot at 100,100); hotspot moved to (300,200) -> MouseSet (296,196,1)")

        d.pump(0.3)
        t = time.monotonic()
        d.pump(1.0)
        idle = {h: [(m, s) for tt, m, s in l.events if tt >= t] for h, l in lst.items()}
        self.rec(not any(idle.values()), names[3], "calls in 1 s: %s" % idle)

        # Keyboard: QEMU key numbers (qnum: XT scancodes, 0xe0-prefixed keys as 0x80 | code).
        since = vm.mark()
        for qnum in (0x23, 0x17, 0xCB, 0x9D):
            d.key(0, qnum, True)
            d.key(0, qnum, False)
        ok, seen = vm.wait_input([r"key 35 down .*", r"key 35 up .*", r"key 23 down .*", r"key 23 up .*",
                                  r"key 105 down .*", r"key 105 up .*", r"key 97 down .*", r"key 97 up .*"], since, 5)
        self.rec(ok, names[4], "qnum 0x23,0x17,0xcb,0x9d -> evdev KEY_H 35, KEY_I 23, KEY_LEFT 105, KEY_RIGHTCTRL 97"
                 if ok else "guest saw %s" % seen)

        since = vm.mark()
        d.move_to(0, 100, 50)
        d.move_to(1, 1000, 700)
        d.move_to(1, 0, 0)
        d.move_to(0, 1023, 767)
        d.button(1, 0, True)
        d.button(1, 0, False)
        d.button(0, 2, True)
        d.button(0, 2, False)
        expected = [r"abs head=0 x=100 y=50 .*", r"abs head=1 x=1000 y=700 .*", r"abs head=1 x=0 y=0 .*",
                    r"abs head=0 x=1023 y=767 .*", r"btn 272 down head=1 .*", r"btn 272 up head=1 .*",
                    r"btn 273 down head=0 .*", r"btn 273 up head=0 .*"]
        # The two tablets are separate devices: their lines interleave in any order.
        ok0, seen = vm.wait_input([e for e in expected if "head=0" in e], since, 5)
        ok1, _ = vm.wait_input([e for e in expected if "head=1" in e], since, 2)
        absolute = d.prop("/org/qemu/Display1/Console_0", "org.qemu.Display1.Mouse", "IsAbsolute")
        self.rec(ok0 and ok1, names[5], ("IsAbsolute %s; console 0 -> the unbound tablet, console 1 -> the tablet "
                                         "bound to head 1; pixel p -> p*32767/width; button 0 -> BTN_LEFT, 2 -> "
                                         "BTN_RIGHT" % absolute) if ok0 and ok1 else "guest saw %s" % seen)

        problems = []
        for cmd, h, size, want_event, want in (
                ("mode 0 800x600", 0, (800, 600), "Scanout", guest_frame(800, 600, 0, 0, cursor=False)),
                ("mode 0 1024x768", 0, MODE, "Scanout", guest_frame(MODE[0], MODE[1], 0, 0, cursor=False)),
                ("frame 1 5 %d %d %d %d" % DAMAGE, 1, MODE, "Update", damaged_frame(MODE[0], MODE[1], 1, DAMAGE)),
                ("frame 1 0", 1, MODE, "Scanout", guest_frame(MODE[0], MODE[1], 1, 0, cursor=False))):
            t = time.monotonic()
            if not vm.ctl(cmd):
                problems.append("the guest did not do `%s`" % cmd)
                continue
            l = lst[h]
            got = d.wait(lambda: l.image() is not None and describe_difference(l.image(), want) is None, 5)
            calls = [(m, a) for tt, m, a in l.events if tt >= t and m in ("Scanout", "Update")]
            if not got:
                problems.append("`%s`: %s" % (cmd, describe_difference(l.image(), want)))
            elif [m for m, _ in calls] != [want_event]:
                problems.append("`%s`: calls %s, expected one %s" % (cmd, calls, want_event))
        self.rec(not problems, names[6], "; ".join(problems) or "mode 800x600 and back: Scanout 800x600 / 1024x768, "
                 "exact; DIRTYFB clip %dx%d at (%d,%d): one Update of it, frame 5 there; full DIRTYFB: a Scanout"
                 % (DAMAGE[2], DAMAGE[3], DAMAGE[0], DAMAGE[1]))

    # -- vscanout, headless -------------------------------------------------------------------------

    def start_main(self):
        vs = Vscanout(self.args.bin, self.bus, self.args.vscanout_source, label="headless")
        self.vs.append(vs)
        ok, info = vs.wait_ready(15)
        name = "vscanout: starts with --source %s" % self.args.vscanout_source
        if not ok:
            self.rec(False, name, info)
            return None
        # The consoles are enumerated asynchronously: the line may count none yet (the outputs
        # are checked next).
        self.rec(True, name, "ready line printed with %s head(s)" % info)
        self.main = vs
        return vs

    def check_outputs(self, vs):
        want = {"HEAD-0": MODE, "HEAD-1": MODE}
        seen = {}

        def ok():
            nonlocal seen
            try:
                seen = vs.randr()
            except (RuntimeError, subprocess.TimeoutExpired):
                return None
            return seen == want
        self.rec(bool(wait_until(ok, 10, 0.2)), "vscanout: outputs HEAD-0 and HEAD-1, 1024x768",
                 "wlr-randr: %s" % seen)

    def save(self, img, name):
        if img is not None:
            img.save(os.path.join(self.work, name + ".ppm"))

    def check_frames(self, vs, name, cursor_options, timeout=10):
        """Both heads equal to frame 0 with the cursor at one of cursor_options (top-left or None),
        within one deadline for both."""
        reasons = []
        all_ok = True
        end = time.monotonic() + timeout
        for h in (0, 1):
            wants = [(c, cursor_frame(MODE[0], MODE[1], h, c)) for c in cursor_options]
            which = [None]

            def accept(img):
                diffs = []
                for c, want in wants:
                    diff = describe_difference(img, want)
                    if diff is None:
                        which[0] = c
                        return None
                    diffs.append("against frame 0 with %s: %s" % ("cursor at %s" % (c,) if c else "no cursor", diff))
                return "; ".join(diffs)

            ok, problem, img = vs.wait_capture(h, accept, max(0.0, end - time.monotonic()))
            if ok:
                reasons.append("HEAD-%d exact, %s" % (h, "cursor image at (%d,%d)" % which[0] if which[0] else "no cursor"))
            else:
                all_ok = False
                reasons.append("HEAD-%d: %s" % (h, problem))
                self.save(img, "fail-%s-head%d" % (re.sub(r"\W+", "-", name)[:40], h))
        self.rec(all_ok, name, "; ".join(reasons))
        return all_ok

    def vscanout_checks(self):
        vm = self.vm
        names_after = ["vscanout: outputs HEAD-0 and HEAD-1, 1024x768",
                       "vscanout: both heads show the guest's frame 0 (grim, exact)",
                       "vscanout: the guest cursor at its place with its hotspot",
                       "vscanout: the guest cursor follows MouseSet",
                       "vscanout: a static guest costs no renders or commits",
                       "vscanout: keys typed with wtype reach the guest",
                       "vscanout: an upper-case letter typed with wtype arrives with Shift",
                       "vscanout: the guest hides its cursor",
                       "vscanout: a guest mode change (800x600 and back), exact",
                       "vscanout: a damage Update from the guest (DIRTYFB with a clip), exact"]
        vs = self.start_main()
        if vs is None:
            self.not_run(names_after, "vscanout did not start")
            return False
        self.check_outputs(vs)
        # QEMU 7.2 gives a listener that registers after the guest set its cursor no
        # CursorDefine: the first frame may come without the cursor.
        self.check_frames(vs, names_after[1], [None, (96, 96)])
        ok = all(vm.ctl("cursor %d" % h) for h in (0, 1))
        if ok:
            self.check_frames(vs, names_after[2], [(96, 96)])
        else:
            self.rec(False, names_after[2], "the guest did not redefine its cursor")
        if vm.ctl("move 0 300 200"):
            ok, problem, img = vs.wait_capture(0, lambda img: describe_difference(
                img, cursor_frame(MODE[0], MODE[1], 0, (296, 196))), 10)
            if not ok:
                self.save(img, "fail-cursor-move-head0")
            vm.ctl("move 0 100 100")
            ok2, problem2, _ = vs.wait_capture(0, lambda img: describe_difference(
                img, cursor_frame(MODE[0], MODE[1], 0, (96, 96))), 10)
            self.rec(ok and ok2, names_after[3], "hotspot to (300,200): square at (296,196), back at (96,96)"
                     if ok and ok2 else (problem if not ok else "back to (100,100): %s" % problem2))
        else:
            self.rec(False, names_after[3], "the guest did not move its cursor")
        self.check_static(vs, names_after[4])
        self.check_guest_changes(vs)
        self.check_keys(vs, names_after[5], names_after[6])
        return True

    def check_guest_changes(self, vs):
        """The cursor hidden, a mode change and back, a partial damage: on head 0, its cursor
        hidden (so that these checks do not depend on the cursor's placement)."""
        vm = self.vm
        name = "vscanout: the guest hides its cursor"
        if vm.ctl("hide 0"):
            ok, problem, img = vs.wait_capture(0, lambda img: describe_difference(img, cursor_frame(MODE[0], MODE[1], 0)), 10)
            self.rec(ok, name, "HEAD-0 exact without the cursor" if ok else problem)
        else:
            self.rec(False, name, "the guest did not hide its cursor")

        name = "vscanout: a guest mode change (800x600 and back), exact"
        problems = []
        for size in ((800, 600), MODE):
            if not vm.ctl("mode 0 %dx%d" % size):
                problems.append("the guest did not set %dx%d" % size)
                break
            ok, problem, img = vs.wait_capture(0, lambda img: describe_difference(
                img, guest_frame(size[0], size[1], 0, 0, cursor=False)), 10)
            if not ok:
                problems.append("%dx%d: %s" % (size[0], size[1], problem))
                self.save(img, "fail-mode-%dx%d" % size)
            try:
                outputs = vs.randr()
                if outputs.get("HEAD-0") != size:
                    problems.append("wlr-randr says HEAD-0 is %s during %dx%d" % (outputs.get("HEAD-0"), *size))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(str(e))
        self.rec(not problems, name, "; ".join(problems) or "HEAD-0 800x600 then 1024x768, both exact (wlr-randr agrees)")

        name = "vscanout: a damage Update from the guest (DIRTYFB with a clip), exact"
        if vm.ctl("frame 0 5 %d %d %d %d" % DAMAGE):
            want = damaged_frame(MODE[0], MODE[1], 0, DAMAGE)
            ok, problem, img = vs.wait_capture(0, lambda img: describe_difference(img, want), 10)
            if not ok:
                self.save(img, "fail-damage-head0")
            self.rec(ok, name, "frame 5 inside %dx%d at (%d,%d), frame 0 elsewhere" % (DAMAGE[2], DAMAGE[3], DAMAGE[0],
                                                                                       DAMAGE[1]) if ok else problem)
        else:
            self.rec(False, name, "the guest did not redraw")
        # back to frame 0 with the cursor at (100, 100)
        vm.ctl("frame 0 0")
        vm.ctl("cursor 0")

    def check_static(self, vs, name):
        try:
            before = vs.settle()
            time.sleep(1.0)
            after = vs.stats()
        except (RuntimeError, OSError, ValueError) as e:
            self.rec(False, name, str(e))
            return
        diffs = []
        for h in (0, 1):
            b, a = before.get(h, {}), after.get(h, {})
            for k in ("renders", "commits"):
                if b.get(k) != a.get(k):
                    diffs.append("head %d %s %s -> %s" % (h, k, b.get(k), a.get(k)))
        self.rec(not diffs and 0 in after and 1 in after, name, "; ".join(diffs) or "renders %s, commits %s over 1 s" % (
            [after[h].get("renders") for h in (0, 1)], [after[h].get("commits") for h in (0, 1)]))

    def wtype(self, vs, *args):
        r = subprocess.run(["wtype"] + list(args), env=vs.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        return r.returncode, r.stderr.decode(errors="replace").strip()

    def check_keys(self, vs, name, name_shift):
        if not shutil.which("wtype"):
            self.not_run([name, name_shift], "wtype is not installed")
            return
        vm = self.vm
        since = vm.mark()
        rc, err = self.wtype(vs, "hi")
        rc2, err2 = self.wtype(vs, "-k", "Left")
        if rc or rc2:
            self.rec(False, name, "wtype failed: %s" % (err or err2))
        else:
            ok, seen = vm.wait_input([r"key 35 down .*", r"key 35 up .*", r"key 23 down .*", r"key 23 up .*",
                                      r"key 105 down .*", r"key 105 up .*"], since, 10)
            self.rec(ok, name, "`wtype hi; wtype -k Left` -> KEY_H, KEY_I, KEY_LEFT down/up" if ok
                     else "guest saw %s" % (seen or "no key"))
        since = vm.mark()
        rc, err = self.wtype(vs, "H")
        if rc:
            self.rec(False, name_shift, "wtype failed: %s" % err)
            return
        ok, seen = vm.wait_input([r"key 42 down .*|key 54 down .*", r"key 35 down .*", r"key 35 up .*",
                                  r"key 42 up .*|key 54 up .*"], since, 10)
        self.rec(ok, name_shift, "`wtype H` -> Shift down, KEY_H down/up, Shift up" if ok
                 else "guest saw %s" % (seen or "no key"))

    # -- QEMU goes away and comes back ---------------------------------------------------------------

    def no_signal(self, vs, name, extra=""):
        reasons = []
        ok_all = True
        for h in (0, 1):
            ok, problem, img = vs.wait_capture(h, lambda img: "; ".join(no_signal_problems(img)) or None, 10)
            ok_all &= ok
            reasons.append("HEAD-%d %s" % (h, "no signal" if ok else problem))
            if not ok:
                self.save(img, "fail-nosignal-head%d" % h)
        try:
            st = vs.stats()
            reasons.append("stats connected %s" % [st.get(h, {}).get("connected") for h in (0, 1)])
        except (RuntimeError, OSError, ValueError) as e:
            reasons.append(str(e))
        self.rec(ok_all and vs.alive(), name, extra + "; ".join(reasons))

    def lifecycle(self):
        """QEMU killed under vscanout, then a new QEMU; False when the second VM did not boot."""
        vm = self.vm
        t = time.monotonic()
        killed = vm.kill_qemu(signal.SIGKILL)
        rc = vm.wait_exit(15)
        say("QEMU %d killed (SIGKILL: %s); run.sh ended with %s after %.1f s" % (vm.qemu_pid or 0, killed, rc,
                                                                            time.monotonic() - t))
        if self.main.alive():
            self.no_signal(self.main, LATER[0])
        else:
            self.rec(False, LATER[0], "vscanout is gone: %s" % self.main.tail(6))
        if not self.boot("vm2"):
            self.rec(False, LATER[1], "the second VM did not boot (no GUEST-READY; see %s)" % self.vm.console)
            self.not_run(LATER[2:], "the second VM did not boot")
            return False
        if self.main.alive():
            # vscanout listens from QEMU's start on: it also sees the guest define its cursor.
            self.check_frames(self.main, LATER[1], [(96, 96)], timeout=15)
        else:
            self.rec(False, LATER[1], "vscanout is gone: %s" % self.main.tail(6))
        return True

    # -- pointer: vscanout nested in sway --------------------------------------------------------------

    def point_at(self, rect, h, gx, gy):
        """Moves the parent's pointer onto guest pixel (gx, gy) of head h, shown in the window
        whose content is `rect`; None when the guest's tablet for h reports that pixel (+-1 when
        the window scales the frame), else the problem."""
        vm, sway = self.vm, self.sway
        fx, fy, fw, fh = place_frame(MODE[0], MODE[1], rect["width"], rect["height"])
        # the layout pixel whose guest pixel is (gx, gy): the centre of its span when scaled
        lx = rect["x"] + fx + (2 * gx + 1) * fw // (2 * MODE[0])
        ly = rect["y"] + fy + (2 * gy + 1) * fh // (2 * MODE[1])
        tol = 0 if (fw, fh) == MODE else 1
        since = vm.mark()
        rx = r"abs head=%d x=(\d+) y=(\d+) .*" % h

        def last_abs():
            hits = [m for m in (re.fullmatch(rx, line[len("GUEST-INPUT "):])
                                for line in vm.guest_lines("GUEST-INPUT ", since)) if m]
            return (int(hits[-1].group(1)), int(hits[-1].group(2))) if hits else None

        def on_target():
            p = last_abs()
            return p is not None and abs(p[0] - gx) <= tol and abs(p[1] - gy) <= tol

        # Entering a window gives the client wl_pointer.enter with a position but no motion, and
        # wlroots' wayland backend makes no pointer event of an enter; sway may also send the
        # enter late, at a later position (then no motion at all). So: come in beside the
        # target, then move onto it, and once more if the guest saw nothing, as a hand would.
        # (The virtual pointer's own requests, not `swaymsg seat - cursor set/press`: sway sends
        # the events of an IPC cursor command to the client only with its next event.)
        for _ in range(3):
            try:
                sway.point("move %d %d" % (lx + 7, ly + 5))
                time.sleep(0.1)
                sway.point("move %d %d" % (lx, ly))
            except RuntimeError as e:
                return str(e)
            if wait_until(on_target, 1.5):
                break
        p = last_abs()
        where = "head %d: layout (%d,%d) in a %dx%d window" % (h, lx, ly, rect["width"], rect["height"])
        if p is None:
            return "%s -> no abs event for head %d; guest saw %s" % (
                where, h, vm.guest_lines("GUEST-INPUT ", since) or "nothing")
        if not on_target():
            return "%s -> guest (%d,%d), expected (%d,%d)%s" % (where, p[0], p[1], gx, gy, " +-1" if tol else "")
        self.pointed.append("%s -> guest (%d,%d)" % (where, p[0], p[1]))
        return None

    def click(self, h, code):
        """Presses and releases button `code` where the pointer is; None when head h's tablet
        reports both, else the problem."""
        since = self.vm.mark()
        try:
            self.sway.point("press %d" % code)
            self.sway.point("release %d" % code)
        except RuntimeError as e:
            return str(e)
        ok, seen = self.vm.wait_input([r"btn %d down head=%d .*" % (code, h), r"btn %d up head=%d .*" % (code, h)],
                                      since, 5)
        return None if ok else "head %d button %d: guest saw %s" % (h, code, seen or "nothing")

    def nested_pointer(self):
        names = LATER[2:5] + [LATER[8]]
        size = (2 * MODE[0] + 40, MODE[1] + 40)
        cfg = ["default_border none", "default_floating_border none", "focus_follows_mouse no",
               'for_window [title="HEAD-0$"] floating enable, move absolute position 0 0',
               'for_window [title="HEAD-1$"] floating enable, move absolute position %d 0' % (MODE[0] + 40)]
        try:
            self.sway = Sway(size, cfg)
            self.sway.wait_ready()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            self.not_run(names, "sway: %s" % e)
            return
        sway = self.sway
        # wlroots picks its wayland backend from WAYLAND_DISPLAY (an absolute path: vscanout keeps
        # its own XDG_RUNTIME_DIR for its socket).
        vs = Vscanout(self.args.bin, self.bus, self.args.vscanout_source, label="nested",
                      env={"WAYLAND_DISPLAY": os.path.join(sway.runtime, sway.socket), "WLR_BACKENDS": None})
        self.vs.append(vs)
        ok, info = vs.wait_ready(15)
        if not ok:
            self.not_run(names, "nested vscanout: %s" % info)
            return

        def heads_shown(pred=lambda rects: True):
            rects = {int(t[-1]): r for t, r in sway.windows() if re.search(r"HEAD-[01]$", t)}
            return rects if len(rects) == 2 and pred(rects) else None

        rects = wait_until(heads_shown, 10, 0.1)
        if not rects:
            self.not_run(names, "sway shows no windows HEAD-0 and HEAD-1: %s" % sway.windows())
            return
        say("nested windows: %s" % rects)
        self.pointed = []
        problems = [p for p in (self.point_at(rects[0], 0, 200, 150),) if p]
        clicks = [p for p in (self.click(0, 272),) if p]
        problems += [p for p in (self.point_at(rects[1], 1, 700, 500),) if p]
        clicks += [p for p in (self.click(1, 273),) if p]
        self.rec(not problems, names[0], "; ".join(problems) or "; ".join(self.pointed))
        self.rec(not clicks, names[1], "; ".join(clicks) or "BTN_LEFT in HEAD-0's window -> BTN_LEFT on head 0's "
                 "tablet, BTN_RIGHT in HEAD-1's -> BTN_RIGHT on head 1's")

        # Both windows tiled side by side: each frame scaled (1044x808 windows: 1044x783 frames
        # with bars above and below).
        self.pointed = []
        try:
            sway.msg('[title="HEAD-[01]$"] floating disable')
            rects = wait_until(lambda: heads_shown(lambda r: all((r[h]["width"], r[h]["height"]) != MODE
                                                                 for h in (0, 1))), 10, 0.1)
            if not rects:
                raise RuntimeError("the windows kept their sizes: %s" % sway.windows())
            time.sleep(0.3)  # vscanout's configure of the new size
            problem = self.point_at(rects[0], 0, 500, 400) or self.point_at(rects[1], 1, 1000, 20)
        except RuntimeError as e:
            problem = str(e)
        self.rec(problem is None, names[2], problem or "; ".join(self.pointed))

        # The guest's pointer is absolute (a tablet): the parent's pointer is the guest's, so it
        # shows the guest cursor image (cursor_path "parent") and the frame none. QEMU 7.2 gives a
        # listener that came after the guest set its cursor no CursorDefine: the guest sets it again.
        for h in (0, 1):
            self.vm.ctl("cursor %d" % h)
        paths = {}

        def parent_cursor():
            nonlocal paths
            try:
                st = vs.stats()
            except (RuntimeError, OSError, ValueError):
                return False
            paths = {h: (st.get(h, {}).get("cursor_path"), st.get(h, {}).get("cursor_images")) for h in (0, 1)}
            return all(p == "parent" and (n or 0) >= 1 for p, n in paths.values())

        ok = wait_until(parent_cursor, 10, 0.2)
        self.rec(bool(ok), names[3], "cursor_path, cursor_images per head: %s" % paths)
        rc = vs.stop()
        if rc != 0:
            say("nested vscanout ended with %s: %s" % (rc, vs.tail(6)))

    # -- the end --------------------------------------------------------------------------------------

    def clean_exit(self):
        """The guest powers off (QEMU exits cleanly) under vscanout and a vscanout --once; then
        vscanout's SIGTERM."""
        vm = self.vm
        once = Vscanout(self.args.bin, self.bus, self.args.vscanout_source, args=["--once"], label="once")
        self.vs.append(once)
        ok, info = once.wait_ready(15)
        if not ok:
            self.rec(False, LATER[6], "did not start: %s" % info)
            once = None
        vm.ctl("quit", 10)
        rc = vm.wait_exit(20)
        say("guest quit; run.sh ended with %s" % rc)
        if self.main.alive():
            self.no_signal(self.main, LATER[5])
        else:
            self.rec(False, LATER[5], "vscanout is gone: %s" % self.main.tail(6))
        if once:
            try:
                rc = once.proc.wait(10)
            except subprocess.TimeoutExpired:
                rc = None
            self.rec(rc == 0, LATER[6], "exit status %s" % rc if rc is not None else
                     "still running 10 s after QEMU exited")
        alive = self.main.alive()
        rc = self.main.stop() if alive else self.main.proc.returncode
        stats = {}
        try:
            stats = self.main.read_stats()
        except (OSError, ValueError):
            pass
        self.rec(alive and rc == 0 and sorted(stats) == [0, 1], LATER[7],
                 "exit status %s%s, stats heads %s" % (rc, "" if alive else " (had already exited)", sorted(stats)))

    def run(self):
        os.makedirs(self.work, exist_ok=True)
        try:
            self.bus = Bus(self.work)
        except (RuntimeError, OSError) as e:
            self.rec(False, "a private dbus-daemon starts", str(e))
            return
        say("private bus %s" % self.bus.address)
        if not self.boot("vm1"):
            self.rec(False, "the VM boots and the guest shows its frames", "no GUEST-READY (see %s)" % self.vm.console)
            return
        if not self.args.no_plumbing:
            self.plumbing()
        if self.args.plumbing_only or not self.vscanout_checks():
            if not self.args.plumbing_only:
                self.not_run(LATER, "vscanout did not start")
            self.vm.ctl("quit")
            self.vm.wait_exit(20)
            return
        if self.lifecycle():
            self.nested_pointer()
            self.clean_exit()

    def cleanup(self):
        for vs in self.vs:
            vs.cleanup(keep_to=self.work)
        if self.sway:
            self.sway.stop()
        for vm in self.vms:
            vm.stop()
        if self.bus:
            self.bus.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("VSCANOUT_BIN", os.path.join(REPO, "build", "src", "vscanout")))
    ap.add_argument("--work", default=os.path.join(os.environ.get("VM_BUILD", os.path.join(REPO, "build-vm")),
                                                   "qemu-dbus"))
    ap.add_argument("--plumbing-only", action="store_true", help="only the checks without vscanout")
    ap.add_argument("--no-plumbing", action="store_true", help="skip the checks without vscanout")
    ap.add_argument("--vscanout-source", default="qemu",
                    help="vscanout's --source (default qemu, the session bus: the private one)")
    ap.add_argument("--vm-timeout", type=int, default=90, help="VM_TIMEOUT of each boot")
    ap.add_argument("--deadline", type=int, default=170, help="seconds for the whole run")
    args = ap.parse_args()
    args.work = os.path.realpath(args.work)
    args.bin = os.path.realpath(args.bin)
    if args.work in ("/", "/tmp", "/work", REPO, os.path.dirname(REPO)) or not os.path.basename(args.work):
        ap.error("refusing to empty %s as the work folder" % args.work)
    shutil.rmtree(args.work, ignore_errors=True)

    test = Test(args)

    def on_alarm(signum, frame):
        raise Deadline()

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.deadline)
    try:
        test.run()
    except Deadline:
        test.rec(False, "the whole run within %d s" % args.deadline, "deadline reached; stopped")
    except KeyboardInterrupt:
        test.rec(False, "the run ends by itself", "interrupted")
    except Exception:  # noqa: BLE001 - a bug here must still end with the summary line
        test.rec(False, "the harness ran to the end", traceback.format_exc().strip().replace("\n", " | "))
    finally:
        signal.alarm(0)
        try:
            test.cleanup()
        except Exception as e:  # noqa: BLE001 - report and go on to the summary
            print("qemu-test: clean-up failed: %r" % e, flush=True)
    say("done; work files in %s" % args.work)
    print("qemu vm: %d passed, %d failed" % (test.res.passed, test.res.failed), flush=True)
    return 1 if test.res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
