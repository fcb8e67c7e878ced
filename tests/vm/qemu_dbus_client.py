"""A small QEMU `-display dbus` client (Python GObject), for the QEMU VM test's plumbing checks:
what QEMU itself shows of the guest (frames, cursor, mouse position) and input injected straight
into the console's Keyboard/Mouse interfaces, without vscanout. tests/vm/qemu_dbus_host.py uses it.

Technique (QEMU 7.2, see its ui/dbus-*.c): /org/qemu/Display1/VM lists ConsoleIDs; each
/org/qemu/Display1/Console_N has the Console (Head, Type, Width, Height, RegisterListener),
Keyboard and Mouse interfaces. RegisterListener takes one end of a socketpair; on it QEMU is the
D-Bus authentication server while we are the client, and QEMU calls our
/org/qemu/Display1/Listener object (Scanout, Update, CursorDefine, MouseSet, Disable, ...).
Every call here is asynchronous and driven by pump(): a listener that blocks stalls QEMU.

Debian's /usr/bin/python3 with python3-gi.
"""

import socket
import time

from gi.repository import Gio, GLib

LISTENER_XML = """
<node>
 <interface name="org.qemu.Display1.Listener">
  <method name="Scanout"><arg type="u" direction="in"/><arg type="u" direction="in"/>
   <arg type="u" direction="in"/><arg type="u" direction="in"/><arg type="ay" direction="in"/></method>
  <method name="Update"><arg type="i" direction="in"/><arg type="i" direction="in"/>
   <arg type="i" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="in"/>
   <arg type="u" direction="in"/><arg type="ay" direction="in"/></method>
  <method name="ScanoutDMABUF"><arg type="h" direction="in"/><arg type="u" direction="in"/>
   <arg type="u" direction="in"/><arg type="u" direction="in"/><arg type="u" direction="in"/>
   <arg type="t" direction="in"/><arg type="b" direction="in"/></method>
  <method name="UpdateDMABUF"><arg type="i" direction="in"/><arg type="i" direction="in"/>
   <arg type="i" direction="in"/><arg type="i" direction="in"/></method>
  <method name="Disable"/>
  <method name="MouseSet"><arg type="i" direction="in"/><arg type="i" direction="in"/>
   <arg type="i" direction="in"/></method>
  <method name="CursorDefine"><arg type="i" direction="in"/><arg type="i" direction="in"/>
   <arg type="i" direction="in"/><arg type="i" direction="in"/><arg type="ay" direction="in"/></method>
 </interface>
</node>
"""

PIXMAN_X8R8G8B8 = 0x20020888
PIXMAN_A8R8G8B8 = 0x20028888
NAME = "org.qemu"
VM_PATH = "/org/qemu/Display1/VM"


def console_path(cid):
    return "/org/qemu/Display1/Console_%d" % cid


class DBusError(Exception):
    pass


class Listener:
    """What QEMU told one console's listener: the framebuffer, the cursor, the mouse, a log."""

    def __init__(self, cid):
        self.cid = cid
        self.width = self.height = self.stride = self.format = 0
        self.data = None  # bytearray, QEMU's pixels (x8r8g8b8 little endian: B G R X)
        self.cursor = None  # (w, h, hot_x, hot_y, bytes ARGB little endian)
        self.mouse = None  # (x, y, on)
        self.enabled = False
        self.events = []  # (monotonic time, method, short description)
        self.closed = False
        self.conn = None

    def count(self, method, since=0.0):
        return sum(1 for t, m, _ in self.events if m == method and t >= since)

    def image(self):
        """The framebuffer as an RGB vscanout_pixels.Image (None before a Scanout)."""
        from vscanout_pixels import Image
        if self.data is None:
            return None
        w, h, st = self.width, self.height, self.stride
        out = bytearray(w * h * 3)
        for y in range(h):
            row = self.data[y * st:y * st + 4 * w]
            o = 3 * w * y
            out[o:o + 3 * w:3] = row[2::4]
            out[o + 1:o + 3 * w:3] = row[1::4]
            out[o + 2:o + 3 * w:3] = row[0::4]
        return Image(w, h, out)

    def on_call(self, method, params, inv):
        t = time.monotonic()
        if method == "Scanout":
            w, h, st, fmt = (params.get_child_value(i).unpack() for i in range(4))
            data = params.get_child_value(4).get_data_as_bytes().get_data()
            self.width, self.height, self.stride, self.format = w, h, st, fmt
            self.data = bytearray(data)
            self.enabled = True
            self.events.append((t, method, "%dx%d stride %d format 0x%08x" % (w, h, st, fmt)))
        elif method == "Update":
            x, y, w, h, st, fmt = (params.get_child_value(i).unpack() for i in range(6))
            data = params.get_child_value(6).get_data_as_bytes().get_data()
            self.events.append((t, method, "%d,%d %dx%d" % (x, y, w, h)))
            if self.data is not None and x >= 0 and y >= 0 and x + w <= self.width and y + h <= self.height:
                for r in range(h):
                    o = (y + r) * self.stride + 4 * x
                    self.data[o:o + 4 * w] = data[r * st:r * st + 4 * w]
        elif method == "CursorDefine":
            w, h, hx, hy = (params.get_child_value(i).unpack() for i in range(4))
            data = params.get_child_value(4).get_data_as_bytes().get_data()
            self.cursor = (w, h, hx, hy, bytes(data))
            self.events.append((t, method, "%dx%d hot %d,%d" % (w, h, hx, hy)))
        elif method == "MouseSet":
            self.mouse = tuple(params.unpack())
            self.events.append((t, method, "%d,%d on=%d" % self.mouse))
        elif method == "Disable":
            self.enabled = False
            self.events.append((t, method, ""))
        else:
            self.events.append((t, method, params.get_type_string()))
        inv.return_value(None)


class Display:
    """A connection to QEMU's display on a bus; methods that wait pump the default main context."""

    def __init__(self, address, timeout=5.0):
        self.timeout = timeout
        self.ctx = GLib.MainContext.default()
        self.bus = self._finish(lambda cb: Gio.DBusConnection.new_for_address(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None, cb), Gio.DBusConnection.new_for_address_finish)
        self.listeners = {}
        self._node = Gio.DBusNodeInfo.new_for_xml(LISTENER_XML)

    # -- plumbing --------------------------------------------------------------------------

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ctx.iteration(False) or time.sleep(0.005)

    def wait(self, predicate, timeout):
        end = time.monotonic() + timeout
        while True:
            while self.ctx.iteration(False):
                pass
            v = predicate()
            if v or time.monotonic() >= end:
                return v
            time.sleep(0.005)

    def _finish(self, start, finish, timeout=None):
        box = {}

        def done(src, res, *_):
            try:
                box["value"] = finish(res)
            except GLib.Error as e:
                box["error"] = e

        start(done)
        if not self.wait(lambda: box, timeout or self.timeout):
            raise DBusError("no answer within %.1f s" % (timeout or self.timeout))
        if "error" in box:
            raise DBusError(box["error"].message)
        return box["value"]

    def call(self, path, iface, method, sig=None, args=None, fdlist=None, timeout=None):
        """An asynchronous method call on org.qemu, waited for while pumping."""
        params = GLib.Variant(sig, args) if sig else None
        if fdlist is None:
            res = self._finish(lambda cb: self.bus.call(NAME, path, iface, method, params, None,
                                                        Gio.DBusCallFlags.NONE, int((timeout or self.timeout) * 1000),
                                                        None, cb), self.bus.call_finish, timeout)
        else:
            res = self._finish(lambda cb: self.bus.call_with_unix_fd_list(
                NAME, path, iface, method, params, None, Gio.DBusCallFlags.NONE,
                int((timeout or self.timeout) * 1000), fdlist, None, cb),
                lambda r: self.bus.call_with_unix_fd_list_finish(r)[0], timeout)
        return res.unpack() if res is not None else None

    def prop(self, path, iface, name):
        return self.call(path, "org.freedesktop.DBus.Properties", "Get", "(ss)", (iface, name))[0]

    def props(self, path, iface):
        return self.call(path, "org.freedesktop.DBus.Properties", "GetAll", "(s)", (iface,))[0]

    def has_owner(self):
        """Whether a QEMU owns org.qemu on the bus now."""
        try:
            res = self._finish(lambda cb: self.bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                        "org.freedesktop.DBus", "NameHasOwner",
                                                        GLib.Variant("(s)", (NAME,)), None, Gio.DBusCallFlags.NONE,
                                                        2000, None, cb), self.bus.call_finish)
        except DBusError:
            return False
        return res.unpack()[0]

    # -- the display ---------------------------------------------------------------------------

    def consoles(self):
        """[{id, Head, Type, Label, Width, Height, ...}] of every console QEMU lists."""
        out = []
        for cid in self.prop(VM_PATH, "org.qemu.Display1.VM", "ConsoleIDs"):
            p = dict(self.props(console_path(cid), "org.qemu.Display1.Console"))
            p["id"] = cid
            out.append(p)
        return out

    def listen(self, cid):
        """Registers a Listener on console cid; returns it (its state fills in while pumping)."""
        lst = Listener(cid)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fdl = Gio.UnixFDList.new()
        idx = fdl.append(theirs.fileno())
        try:
            self.call(console_path(cid), "org.qemu.Display1.Console", "RegisterListener", "(h)", (idx,), fdlist=fdl)
        finally:
            theirs.close()
            del fdl  # holds a dup of QEMU's end: without this QEMU's exit is never seen
        gsock = Gio.Socket.new_from_fd(mine.detach())
        stream = gsock.connection_factory_create_connection()
        flags = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.DELAY_MESSAGE_PROCESSING
        conn = self._finish(lambda cb: Gio.DBusConnection.new(stream, None, flags, None, None, cb),
                            Gio.DBusConnection.new_finish)

        def on_method(c, sender, path, iface, method, params, inv):
            lst.on_call(method, params, inv)

        conn.register_object("/org/qemu/Display1/Listener", self._node.interfaces[0], on_method, None, None)
        conn.connect("closed", lambda *a: setattr(lst, "closed", True))
        conn.start_message_processing()
        lst.conn = conn
        self.listeners[cid] = lst
        return lst

    def key(self, cid, qnum, down):
        self.call(console_path(cid), "org.qemu.Display1.Keyboard", "Press" if down else "Release", "(u)", (qnum,))

    def button(self, cid, button, down):
        self.call(console_path(cid), "org.qemu.Display1.Mouse", "Press" if down else "Release", "(u)", (button,))

    def move_to(self, cid, x, y):
        self.call(console_path(cid), "org.qemu.Display1.Mouse", "SetAbsPosition", "(uu)", (x, y))

    def close(self):
        for lst in self.listeners.values():
            try:
                lst.conn.close_sync(None)
            except GLib.Error:
                pass
        self.listeners = {}
        try:
            self.bus.close_sync(None)
        except GLib.Error:
            pass
        self.pump(0.05)
