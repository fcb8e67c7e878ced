// The QEMU source's consoles as heads: which consoles a VM has (enumerate), the listener
// connection each is given (add_console) and its vtable, losing them, and the planes they show.
#include <drm_fourcc.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "vgpu/qemu_console.hpp"

namespace vscanout::vgpu {
namespace {

// stride * height in 64 bits, saturated: a hostile stride must not wrap the plane's size into a
// small one (validate_plane then refuses a size that does not cover the rows).
uint32_t plane_bytes(uint32_t stride, uint32_t height) {
	return static_cast<uint32_t>(std::min<uint64_t>(uint64_t{stride} * height, UINT32_MAX));
}

using dbus::errno_text;
using dbus::error_of;
using dbus::Prop;
using dbus::read_props;

constexpr const char *kVmPath = "/org/qemu/Display1/VM";
constexpr const char *kListenerPath = "/org/qemu/Display1/Listener";

// One C entry point a listener method: its arguments parsed, handled on the console's display,
// and QEMU answered (docs/design.md, "The QEMU source").
template <auto Parse, auto Handle> int listener_method(sd_bus_message *m, void *userdata, sd_bus_error *) {
	auto *c = static_cast<QemuSource::Console *>(userdata);
	const char *member = sd_bus_message_get_member(m);
	auto args = Parse(m);
	if (!args) return c->source->answer(*c, m, member, args.take_error());
	qemu::CallContext ctx = c->source->call_context(*c);
	return c->source->answer(*c, m, member, Handle(c->display, *args, ctx));
}

const sd_bus_vtable kListenerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Scanout", "uuuuay", "", (listener_method<qemu::parse_scanout, qemu::on_scanout>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Update", "iiiiuuay", "", (listener_method<qemu::parse_update, qemu::on_update>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("ScanoutDMABUF", "huuuutb", "",
                  (listener_method<qemu::parse_scanout_dmabuf, qemu::on_scanout_dmabuf>), SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("UpdateDMABUF", "iiii", "", (listener_method<qemu::parse_update_dmabuf, qemu::on_update_dmabuf>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Disable", "", "", (listener_method<qemu::parse_disable, qemu::on_disable>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("MouseSet", "iii", "", (listener_method<qemu::parse_mouse_set, qemu::on_mouse_set>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("CursorDefine", "iiiiay", "", (listener_method<qemu::parse_cursor_define, qemu::on_cursor_define>),
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

} // namespace

void QemuSource::ConsoleDeleter::operator()(Console *c) const { delete c; }

qemu::CallContext QemuSource::call_context(const Console &c) {
	return qemu::CallContext{options_.limits, next_buffer_id_, std::chrono::steady_clock::now(), c.head};
}

int QemuSource::answer(Console &c, sd_bus_message *m, const char *member, Result<qemu::Told> told) {
	if (!told) {
		const std::string why = told.error();
		auto &limit = c.refused_log.try_emplace(member ? member : "?", std::chrono::seconds(10)).first->second;
		if (limit.allow()) {
			const uint64_t left_out = limit.suppressed();
			VLOG_ERROR("qemu: head %u: %s refused: %s%s", c.head, member ? member : "?", why.c_str(),
			           left_out ? (" (" + std::to_string(left_out) + " more refused calls not logged)").c_str() : "");
		}
		return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_INVALID_ARGS, "%s", why.c_str());
	}
	if (*told == qemu::Told::next_frame)
		c.damaged = true; // told at the next frame (flush_damage)
	else if (events_.head_changed)
		events_.head_changed(c.head);
	return sd_bus_reply_method_return(m, "");
}

dbus::Message QemuSource::new_call(const std::string &path, const char *iface, const char *member) {
	dbus::Message m;
	if (sd_bus_message_new_method_call(bus_.get(), m.out(), dest(), path.c_str(), iface, member) < 0) m.reset();
	return m;
}

void QemuSource::enumerate() {
	const uint64_t gen = ++generation_;
	dbus::Message m = new_call(kVmPath, "org.freedesktop.DBus.Properties", "GetAll");
	if (!m || sd_bus_message_append(m.get(), "s", "org.qemu.Display1.VM") < 0) return;
	call(std::move(m), [this, gen](sd_bus_message *reply) {
		if (gen != generation_) return;
		if (const char *err = error_of(reply)) {
			if (!waiting_logged_)
				VLOG_INFO("qemu: no QEMU display on the bus yet (%s); waiting for one", log::escape(err).c_str());
			waiting_logged_ = true;
			return;
		}
		waiting_logged_ = false;
		std::map<std::string, Prop> props;
		if (!read_props(reply, props)) {
			VLOG_ERROR("qemu: cannot read the VM's properties");
			return;
		}
		const std::vector<uint32_t> &ids = props["ConsoleIDs"].au;
		VLOG_INFO("qemu: VM '%s' with %zu console(s)", log::escape(props["Name"].s).c_str(), ids.size());
		// Text consoles (serial, monitor) are listed too; a few more than max-heads are asked.
		const size_t asked = std::min(ids.size(), size_t{options_.limits.max_heads} + 16);
		if (asked < ids.size())
			VLOG_ERROR("qemu: the VM lists %zu consoles; only the first %zu are looked at (max-heads=%u): console ids "
			           "%u..%u left out",
			           ids.size(), asked, options_.limits.max_heads, ids[asked], ids.back());
		pending_consoles_ = static_cast<uint32_t>(asked);
		left_out_.clear();
		for (size_t i = 0; i < asked; i++) {
			const uint32_t id = ids[i];
			dbus::Message q = new_call(qemu_console_path(id), "org.freedesktop.DBus.Properties", "GetAll");
			if (!q || sd_bus_message_append(q.get(), "s", "org.qemu.Display1.Console") < 0) continue;
			call(std::move(q), [this, gen, id](sd_bus_message *r) { console_answered(gen, id, r); });
		}
	});
}

void QemuSource::console_answered(uint64_t gen, uint32_t id, sd_bus_message *r) {
	if (gen != generation_) return;
	if (pending_consoles_) pending_consoles_--;
	std::map<std::string, Prop> cp;
	if (error_of(r) || !read_props(r, cp)) {
		VLOG_ERROR("qemu: console %u: cannot read its properties", id);
	} else if (cp["Type"].s != "Graphic") {
		VLOG_INFO("qemu: console %u is of type '%s': not shown", id, log::escape(cp["Type"].s, 32).c_str());
	} else {
		add_console(id, static_cast<uint32_t>(cp["Head"].u), cp["Label"].s);
	}
	if (pending_consoles_ == 0 && !left_out_.empty()) {
		std::string list;
		for (size_t k = 0; k < left_out_.size() && k < 16; k++) list += (k ? ", " : "") + std::to_string(left_out_[k]);
		if (left_out_.size() > 16) list += ", ...";
		VLOG_ERROR("qemu: %zu graphic console(s) left out, at most %u heads are shown (max-heads=%u): console ids %s",
		           left_out_.size(), options_.limits.max_heads, options_.limits.max_heads, list.c_str());
		left_out_.clear();
	}
}

void QemuSource::add_console(uint32_t console_id, uint32_t head, const std::string &label) {
	// Two devices may both have a head 0: the second one is known by its console id.
	for (const auto &[h, c] : consoles_)
		if (h == head && c->live() && c->console_id != console_id) {
			VLOG_INFO("qemu: console %u also calls itself head %u; showing it as head %u", console_id, head,
			          console_id);
			head = console_id;
			break;
		}
	auto it = consoles_.find(head);
	const bool is_new = it == consoles_.end();
	if (!is_new && it->second->live()) {
		if (it->second->console_id != console_id)
			VLOG_ERROR("qemu: console %u claims head %u, which console %u shows already: console %u is not shown",
			           console_id, head, it->second->console_id, console_id);
		return; // already listening
	}
	if (is_new && consoles_.size() >= options_.limits.max_heads) {
		left_out_.push_back(console_id); // logged once all of this enumeration's consoles answered
		return;
	}
	if (is_new) it = consoles_.emplace(head, std::unique_ptr<Console, ConsoleDeleter>(new Console)).first;
	Console &c = *it->second;
	c.source = this;
	c.console_id = console_id;
	c.head = head;
	c.label = label;
	if (!listen(c)) return;
	follow_pointer_mode(c);
	VLOG_INFO("qemu: head %u is console %u '%s'", head, console_id, log::escape(label, 64).c_str());
	if (is_new) {
		if (events_.head_added) events_.head_added(head);
	} else if (events_.head_changed) {
		events_.head_changed(head);
	}
}

// Gives QEMU one end of a socketpair with our listener object on the other.
bool QemuSource::listen(Console &c) {
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
		VLOG_ERROR("qemu: head %u: socketpair: %s", c.head, std::strerror(errno));
		return false;
	}
	UniqueFd ours(sv[0]), theirs(sv[1]);
	// On this connection QEMU is the authentication server and we the client, though QEMU
	// makes the calls. The object is in place before the first message can arrive.
	dbus::Bus p2p;
	dbus::Slot object;
	int r = sd_bus_new(p2p.out());
	if (r >= 0) r = sd_bus_set_fd(p2p.get(), ours.get(), ours.get());
	if (r >= 0) ours.release(); // the connection owns it now
	if (r >= 0) r = sd_bus_negotiate_fds(p2p.get(), 1);
	if (r >= 0)
		r = sd_bus_add_object_vtable(p2p.get(), object.out(), kListenerPath, "org.qemu.Display1.Listener",
		                             kListenerVtable, &c);
	if (r >= 0) r = sd_bus_start(p2p.get());
	if (r < 0) {
		VLOG_ERROR("qemu: head %u: cannot set up the listener connection: %s", c.head, errno_text(r).c_str());
		return false;
	}
	c.p2p = std::move(p2p);
	c.object = std::move(object);
	loop_.add(c.p2p.get());

	dbus::Message m = new_call(qemu_console_path(c.console_id), "org.qemu.Display1.Console", "RegisterListener");
	if (m && sd_bus_message_append(m.get(), "h", theirs.get()) >= 0) {
		// The message holds its own copy of QEMU's end until it is sent; ours closes now, so
		// QEMU's exit shows up as the end of the connection.
		theirs.reset();
		const uint32_t head = c.head;
		call(std::move(m), [this, head](sd_bus_message *reply) {
			if (const char *err = error_of(reply)) {
				VLOG_ERROR("qemu: head %u: RegisterListener failed: %s", head, log::escape(err).c_str());
				if (Console *lost = console(head)) lose_console(*lost, "its listener was refused");
			}
		});
	}
	return true;
}

// Whether QEMU's pointer is absolute (a tablet): then positions go as SetAbsPosition. It changes
// when the guest's driver takes or leaves its tablet.
void QemuSource::follow_pointer_mode(Console &c) {
	const std::string path = qemu_console_path(c.console_id);
	const std::string rule = "type='signal'," + std::string(dest() ? "sender='org.qemu'," : "") + "path='" + path +
	                         "',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'," +
	                         "arg0='org.qemu.Display1.Mouse'";
	const int r = sd_bus_add_match_async(
	    bus_.get(), c.mouse_match.out(), rule.c_str(),
	    [](sd_bus_message *m, void *userdata, sd_bus_error *) {
		    auto *con = static_cast<Console *>(userdata);
		    const char *iface = nullptr;
		    std::map<std::string, Prop> changed;
		    if (sd_bus_message_read(m, "s", &iface) >= 0 && read_props(m, changed) && changed.count("IsAbsolute")) {
			    con->absolute = changed["IsAbsolute"].b;
			    VLOG_INFO("qemu: head %u: the guest's pointer is %s", con->head,
			              con->absolute ? "absolute" : "relative");
		    }
		    return 0;
	    },
	    nullptr, &c);
	if (r < 0) VLOG_ERROR("qemu: head %u: cannot follow the pointer mode: %s", c.head, errno_text(r).c_str());
	dbus::Message q = new_call(path, "org.freedesktop.DBus.Properties", "Get");
	if (!q || sd_bus_message_append(q.get(), "ss", "org.qemu.Display1.Mouse", "IsAbsolute") < 0) return;
	const uint32_t head = c.head;
	call(std::move(q), [this, head](sd_bus_message *reply) {
		int b = 0;
		Console *con = console(head);
		if (con && !error_of(reply) && sd_bus_message_read(reply, "v", "b", &b) >= 0) con->absolute = b != 0;
	});
}

void QemuSource::lose_console(Console &c, const char *why) {
	if (!c.live()) return;
	VLOG_INFO("qemu: head %u (console %u): %s; showing no signal", c.head, c.console_id, why);
	loop_.remove(c.p2p.get());
	c.object.reset();
	c.mouse_match.reset();
	c.p2p.reset();
	c.display.clear();
	c.damaged = false;
	if (events_.head_changed) events_.head_changed(c.head);
	if (options_.once && !ended_ &&
	    std::none_of(consoles_.begin(), consoles_.end(), [](const auto &e) { return e.second->live(); })) {
		ended_ = true;
		VLOG_INFO("qemu: QEMU is gone and --once was given: done");
		if (events_.ended) events_.ended();
	}
}

void QemuSource::lose_all(const char *why) {
	generation_++; // replies still on their way belong to the QEMU that left
	for (auto &[head, c] : consoles_) lose_console(*c, why);
}

QemuSource::Console *QemuSource::console(uint32_t head) const {
	auto it = consoles_.find(head);
	return it == consoles_.end() ? nullptr : it->second.get();
}

// ---- the planes

std::vector<uint32_t> QemuSource::heads() const {
	std::vector<uint32_t> out;
	for (const auto &[head, c] : consoles_) out.push_back(head);
	return out;
}

Result<PlaneInfo> QemuSource::query(uint32_t head, PlaneType type) {
	const Console *c = console(head);
	if (!c) return fail("qemu: no head " + std::to_string(head));
	PlaneInfo p;
	p.head_id = head;
	p.type = type;
	p.state = PlaneState::disabled;
	if (!c->display.primary_on) return p;
	if (type == PlaneType::primary) {
		p.state = PlaneState::enabled;
		if (c->display.dmabuf) {
			p.drm_format = c->display.dmabuf_format;
			p.drm_format_mod = c->display.dmabuf_modifier;
			p.width = c->display.dmabuf_width;
			p.height = c->display.dmabuf_height;
			p.stride = c->display.dmabuf_stride;
			p.buffer_id = c->display.dmabuf_id;
		} else {
			p.drm_format = DRM_FORMAT_XRGB8888;
			p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
			p.width = c->display.picture.width;
			p.height = c->display.picture.height;
			p.stride = c->display.picture.stride;
			p.buffer_id = c->display.picture.id;
		}
		p.size = plane_bytes(p.stride, p.height);
		return p;
	}
	if (!c->display.cursor.fd || !c->display.mouse_on) return p;
	p.state = PlaneState::enabled;
	p.drm_format = DRM_FORMAT_ARGB8888;
	p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	p.width = c->display.cursor.width;
	p.height = c->display.cursor.height;
	p.stride = c->display.cursor.stride;
	p.size = plane_bytes(p.stride, p.height);
	p.buffer_id = c->display.cursor.id;
	// MouseSet gives the image's top-left, as the guest placed its cursor plane: virtio-gpu
	// passes the plane's CRTC position on unchanged (Linux virtgpu_plane.c: pos = crtc_x, the
	// hotspot separately). That is the plane's position here too.
	p.x_hot = static_cast<uint32_t>(c->display.hot_x);
	p.y_hot = static_cast<uint32_t>(c->display.hot_y);
	p.x_pos = c->display.mouse_x;
	p.y_pos = c->display.mouse_y;
	return p;
}

Result<GuestBuffer> QemuSource::open_buffer(const PlaneInfo &plane) {
	const Console *c = console(plane.head_id);
	if (!c) return fail("qemu: no head " + std::to_string(plane.head_id));
	int fd = -1;
	BufferKind kind = BufferKind::memfd;
	if (plane.type == PlaneType::cursor && c->display.cursor.fd && c->display.cursor.id == plane.buffer_id) {
		fd = c->display.cursor.fd.get();
	} else if (plane.type == PlaneType::primary && c->display.picture.fd && c->display.picture.id == plane.buffer_id) {
		fd = c->display.picture.fd.get();
	} else if (plane.type == PlaneType::primary && c->display.dmabuf && c->display.dmabuf_id == plane.buffer_id) {
		fd = c->display.dmabuf.get();
		kind = c->display.dmabuf_is_memfd ? BufferKind::memfd : BufferKind::dmabuf;
	}
	if (fd < 0)
		return fail("qemu: buffer " + std::to_string(plane.buffer_id) + " of head " + std::to_string(plane.head_id) +
		            " is gone");
	GuestBuffer g;
	g.fd = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (!g.fd) return fail(std::string("qemu: cannot duplicate a buffer fd: ") + std::strerror(errno));
	g.kind = kind;
	auto size = fd_byte_size(g.fd.get());
	if (!size) return size.take_error();
	g.byte_size = *size;
	return g;
}

uint64_t QemuSource::damage_seq(uint32_t head) const {
	const Console *c = console(head);
	return c ? c->display.damage : 0;
}

std::optional<RowSpan> QemuSource::damage_rows(uint32_t head, uint64_t since) {
	Console *c = console(head);
	if (!c) return std::nullopt;
	return c->display.damage_rows.since(since);
}

bool QemuSource::connected(uint32_t head) const {
	const Console *c = console(head);
	return c && c->live();
}

} // namespace vscanout::vgpu
