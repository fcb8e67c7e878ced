"""A fake QEMU for vscanout's QEMU source, peer to peer over QMP (`--source qemu:qmp:<socket>`),
that plays the hostile party: it answers QMP as told (or not at all), and on the D-Bus connection
vscanout asks for it serves the VM and consoles it is given and calls vscanout's listener with
whatever a test wants, valid or not.

How QEMU does it (ui/dbus*.c, QEMU 7.2 `-display dbus,p2p=yes`): on QMP, `getfd` takes one end of
a socketpair (SCM_RIGHTS) and `add_client` with protocol `@dbus-display` makes it a D-Bus
connection on which QEMU is the authentication server and serves /org/qemu/Display1/VM and
/org/qemu/Display1/Console_<id>. Console.RegisterListener(h) hands another socket: on it QEMU is
the authentication server again and calls /org/qemu/Display1/Listener (Scanout, Update, ...).

Debian's /usr/bin/python3 with python3-gi (Gio). The GLib main loop runs in a thread of its own;
the test's calls into the listener are synchronous calls from the test's thread (GDBus is
thread-safe).
"""

import fcntl
import json
import os
import socket
import threading
import time

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

PIXMAN_X8R8G8B8 = 0x20020888
PIXMAN_R5G6B5 = 0x10020565
DRM_FORMAT_XRGB8888 = 0x34325258
LISTENER_PATH = "/org/qemu/Display1/Listener"
LISTENER_IFACE = "org.qemu.Display1.Listener"

VM_XML = """
<node>
 <interface name="org.qemu.Display1.VM">
  <property name="Name" type="s" access="read"/>
  <property name="UUID" type="s" access="read"/>
  <property name="ConsoleIDs" type="au" access="read"/>
 </interface>
</node>"""

CONSOLE_XML = """
<node>
 <interface name="org.qemu.Display1.Console">
  <method name="RegisterListener"><arg type="h" name="listener" direction="in"/></method>
  <method name="SetUIInfo"><arg type="q" direction="in"/><arg type="q" direction="in"/>
   <arg type="i" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="in"/>
   <arg type="u" direction="in"/></method>
  <property name="Label" type="s" access="read"/>
  <property name="Head" type="u" access="read"/>
  <property name="Type" type="s" access="read"/>
  <property name="Width" type="u" access="read"/>
  <property name="Height" type="u" access="read"/>
 </interface>
 <interface name="org.qemu.Display1.Keyboard">
  <method name="Press"><arg type="u" direction="in"/></method>
  <method name="Release"><arg type="u" direction="in"/></method>
 </interface>
 <interface name="org.qemu.Display1.Mouse">
  <method name="Press"><arg type="u" direction="in"/></method>
  <method name="Release"><arg type="u" direction="in"/></method>
  <method name="SetAbsPosition"><arg type="u" direction="in"/><arg type="u" direction="in"/></method>
  <method name="RelMotion"><arg type="i" direction="in"/><arg type="i" direction="in"/></method>
  <property name="IsAbsolute" type="b" access="read"/>
 </interface>
</node>"""

_loop_lock = threading.Lock()
_loop_thread = None


def _ensure_main_loop():
    """One GLib main loop (the default context) for every fake in this process."""
    global _loop_thread
    with _loop_lock:
        if _loop_thread is None:
            loop = GLib.MainLoop()
            _loop_thread = threading.Thread(target=loop.run, daemon=True, name="glib")
            _loop_thread.start()


def _in_main_loop(fn, timeout=10):
    """Runs fn() in the GLib thread and returns its result."""
    box = {}
    done = threading.Event()

    def run():
        try:
            box["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e
        done.set()
        return False

    GLib.idle_add(run)
    if not done.wait(timeout):
        raise TimeoutError("the GLib thread did not run a call in time")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _server_connection(fd):
    """A D-Bus connection on fd on which we are the authentication server (as QEMU is). It
    processes no message until start_message_processing(): objects first, as QEMU has them."""
    sock = Gio.Socket.new_from_fd(fd)
    stream = sock.connection_factory_create_connection()
    box = {}
    done = threading.Event()

    def finished(_src, res):
        try:
            box["conn"] = Gio.DBusConnection.new_finish(res)
        except GLib.Error as e:
            box["error"] = e
        done.set()

    GLib.idle_add(lambda: Gio.DBusConnection.new(
        stream, Gio.dbus_generate_guid(),
        Gio.DBusConnectionFlags.AUTHENTICATION_SERVER | Gio.DBusConnectionFlags.AUTHENTICATION_ALLOW_ANONYMOUS
        | Gio.DBusConnectionFlags.DELAY_MESSAGE_PROCESSING,
        None, None, finished) and False)
    if not done.wait(10):
        raise TimeoutError("vscanout did not authenticate on a D-Bus connection")
    if "error" in box:
        raise RuntimeError(box["error"].message)
    return box["conn"]


class Console:
    def __init__(self, console_id, head=0, label="VGA", type_="Graphic", width=640, height=480):
        self.id, self.head, self.label, self.type = console_id, head, label, type_
        self.width, self.height = width, height
        self.listener = None  # our connection to vscanout's listener object, once registered

    @property
    def path(self):
        return f"/org/qemu/Display1/Console_{self.id}"


class FakeQemu:
    """qmp: how QMP behaves: "normal", "never-accept" (listens, never accepts), "silent"
    (accepts, says nothing), "trap" (a reply with another id and an error whose text holds
    "return", where add_client's success should be)."""

    def __init__(self, path, consoles=None, name="fake", qmp="normal"):
        _ensure_main_loop()
        self.path = path
        self.name = name
        self.consoles = consoles if consoles is not None else [Console(0)]
        self.mode = qmp
        self.qmp_commands = []  # (client number, command dict) as received
        self.qmp_clients = 0
        self.conns = []
        self.listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listen.bind(path)
        self.listen.listen(0 if qmp == "never-accept" else 4)
        self.stopped = False
        self.accepted = []
        if qmp != "never-accept":
            threading.Thread(target=self._serve_qmp, daemon=True, name="fake-qmp").start()

    # ---- QMP

    def _serve_qmp(self):
        while not self.stopped:
            try:
                c, _ = self.listen.accept()
            except OSError:
                return
            self.qmp_clients += 1
            self.accepted.append(c)
            threading.Thread(target=self._qmp_client, args=(c, self.qmp_clients), daemon=True).start()

    def _qmp_client(self, c, number):
        if self.mode == "silent":
            return  # accepted, and nothing is ever said
        buf = b""
        passed = []

        def send(obj):
            c.sendall((json.dumps(obj) + "\r\n").encode())

        try:
            send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}})
        except OSError:
            return  # vscanout gave up on this connection already
        while True:
            try:
                msg, anc, _, _ = c.recvmsg(4096, socket.CMSG_SPACE(16))
            except OSError:
                return
            if not msg:
                return
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    passed += list(memoryview(data).cast("i")[:len(data) // 4])
            buf += msg
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    cmd = json.loads(line)
                except ValueError:
                    self.qmp_commands.append((number, {"unparsable": line.decode(errors="replace")}))
                    send({"error": {"class": "GenericError", "desc": "JSON parse error"}})
                    continue
                self.qmp_commands.append((number, cmd))
                name, cid = cmd.get("execute"), cmd.get("id")
                try:
                    self._answer(send, name, cid, passed)
                except OSError:
                    return

    def _answer(self, send, name, cid, passed):
        send({"event": "RESUME", "timestamp": {"seconds": 0, "microseconds": 0}})
        if self.mode == "trap" and name == "add_client":
            send({"return": {}, "id": (cid or 0) + 1000})  # somebody else's success
            send({"error": {"class": "GenericError", "desc": "no \"return\": {} for you"}, "id": cid})
            return
        send({"return": {}, "id": cid})
        if name == "add_client" and passed:
            fd = passed.pop()
            threading.Thread(target=self._serve_display, args=(fd,), daemon=True).start()

    # ---- D-Bus: the VM and its consoles

    def _serve_display(self, fd):
        try:
            conn = _server_connection(fd)
        except (OSError, RuntimeError, TimeoutError, GLib.Error):
            return  # vscanout went away meanwhile
        self.conns.append(conn)
        vm = Gio.DBusNodeInfo.new_for_xml(VM_XML).interfaces[0]
        node = Gio.DBusNodeInfo.new_for_xml(CONSOLE_XML)

        def vm_prop(_c, _s, _p, _i, prop):
            if prop == "Name":
                return GLib.Variant("s", self.name)
            if prop == "UUID":
                return GLib.Variant("s", "00000000-0000-0000-0000-000000000000")
            return GLib.Variant("au", [c.id for c in self.consoles])

        def register():
            conn.register_object("/org/qemu/Display1/VM", vm, None, vm_prop, None)
            for console in self.consoles:
                self._register_console(conn, node, console)
            conn.start_message_processing()

        _in_main_loop(register)

    def _register_console(self, conn, node, console):
        def prop(_c, _s, _p, iface, name):
            if iface.endswith("Mouse"):
                return GLib.Variant("b", False)
            return {"Label": GLib.Variant("s", console.label), "Head": GLib.Variant("u", console.head),
                    "Type": GLib.Variant("s", console.type), "Width": GLib.Variant("u", console.width),
                    "Height": GLib.Variant("u", console.height)}[name]

        def method(_c, _s, _p, iface, name, params, invocation):
            if name == "RegisterListener":
                fds = invocation.get_message().get_unix_fd_list()
                fd = fds.get(params.unpack()[0])
                invocation.return_value(None)
                def connect():
                    try:
                        listener = _server_connection(fd)
                    except (OSError, RuntimeError, TimeoutError, GLib.Error):
                        return  # vscanout went away meanwhile
                    listener.start_message_processing()
                    console.listener = listener

                threading.Thread(target=connect, daemon=True).start()
                return
            invocation.return_value(None)

        for iface in node.interfaces:
            conn.register_object(console.path, iface, method, prop, None)

    # ---- the listener: what a test makes QEMU say

    def wait_listener(self, console=0, timeout=10):
        c = self.consoles[console] if isinstance(console, int) else console
        end = time.monotonic() + timeout
        while c.listener is None:
            if time.monotonic() > end:
                raise AssertionError(f"vscanout registered no listener on console {c.id}")
            time.sleep(0.02)
        return c

    def call(self, console, member, sig, args, fd=None, timeout=10):
        """Calls the listener; returns None on success, else the D-Bus error's message."""
        c = self.wait_listener(console)
        params = GLib.Variant(sig, args) if not isinstance(args, GLib.Variant) else args
        try:
            if fd is None:
                c.listener.call_sync(None, LISTENER_PATH, LISTENER_IFACE, member, params, None,
                                     Gio.DBusCallFlags.NONE, int(timeout * 1000), None)
            else:
                fds = Gio.UnixFDList.new()
                fds.append(fd)
                c.listener.call_with_unix_fd_list_sync(None, LISTENER_PATH, LISTENER_IFACE, member, params, None,
                                                       Gio.DBusCallFlags.NONE, int(timeout * 1000), fds, None)
            return None
        except GLib.Error as e:
            return e.message

    def scanout(self, console, w, h, pixel=b"\x00\x00\xff\x00", stride=None, data=None, fmt=PIXMAN_X8R8G8B8):
        stride = stride or w * len(pixel)
        data = data if data is not None else pixel * (stride // len(pixel)) * h
        return self.call(console, "Scanout", None, _pixels_variant("(uuuu", (w, h, stride, fmt), data))

    def update(self, console, x, y, w, h, pixel=b"\x00\xff\x00\x00", stride=None, data=None):
        stride = stride or w * 4
        data = data if data is not None else pixel * (stride // 4) * h
        return self.call(console, "Update", None, _pixels_variant("(iiiiuu", (x, y, w, h, stride, PIXMAN_X8R8G8B8),
                                                                  data))

    def scanout_dmabuf(self, console, fd, w, h, stride=None, fourcc=DRM_FORMAT_XRGB8888, modifier=0, y0_top=False):
        return self.call(console, "ScanoutDMABUF", "(huuuutb)", (0, w, h, stride or w * 4, fourcc, modifier, y0_top),
                         fd=fd)

    def update_dmabuf(self, console, x=0, y=0, w=1, h=1):
        return self.call(console, "UpdateDMABUF", "(iiii)", (x, y, w, h))

    def cursor_define(self, console, w, h, hot_x, hot_y, pixel=b"\xff\xff\xff\xff", data=None):
        data = data if data is not None else pixel * (w * h)
        return self.call(console, "CursorDefine", None, _pixels_variant("(iiii", (w, h, hot_x, hot_y), data))

    def mouse_set(self, console, x, y, on=1):
        return self.call(console, "MouseSet", "(iii)", (x, y, on))

    def stop(self):
        self.stopped = True
        for c in self.consoles:
            if c.listener is not None:
                try:
                    c.listener.close_sync(None)
                except GLib.Error:
                    pass
        for conn in self.conns:
            try:
                conn.close_sync(None)
            except GLib.Error:
                pass
        for s in self.accepted:
            s.close()
        self.listen.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _pixels_variant(head_sig, head_args, data):
    """A (...ay) tuple with the bytes taken as they are (GLib.Variant('ay', ...) goes byte by byte)."""
    kids = [GLib.Variant(t, v) for t, v in zip(head_sig[1:], head_args)]
    kids.append(GLib.Variant.new_from_bytes(GLib.VariantType.new("ay"), GLib.Bytes.new(bytes(data)), True))
    return GLib.Variant.new_tuple(*kids)


def memfd(size, seal_shrink, fill=b"\x00\x00\xff\x00"):
    """A memfd of size bytes filled with a pixel; sealed against shrinking when asked."""
    fd = os.memfd_create("fake-dmabuf", os.MFD_ALLOW_SEALING)
    os.write(fd, fill * (size // len(fill)))
    if seal_shrink:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    return fd


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
