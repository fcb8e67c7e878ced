#include "vgpu/qemu_source.hpp"

#include <drm_fourcc.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "vgpu/dbus_loop.hpp"
#include "vgpu/qemu_qmp.hpp"

namespace vscanout::vgpu {
namespace {

using dbus::errno_text;
using dbus::error_of;
using dbus::Prop;
using dbus::read_props;

constexpr const char *kService = "org.qemu";
constexpr const char *kVmPath = "/org/qemu/Display1/VM";
constexpr const char *kListenerPath = "/org/qemu/Display1/Listener";
constexpr uint32_t kPixmanX8R8G8B8 = 0x20020888, kPixmanA8R8G8B8 = 0x20028888;
constexpr uint32_t kPixmanR5G6B5 = 0x10020565, kPixmanX1R5G5B5 = 0x10020555; // 16- and 15-bpp guest modes
constexpr uint32_t kMaxSide = 16384;
constexpr int64_t kMaxWheelSteps = 16; // per wheel event
// Where QEMU may put the cursor: around the largest frame, so that no position arithmetic
// downstream (scaling, adding the hotspot) comes near int32's ends.
constexpr int32_t kMaxCursorPos = 2 * int32_t{kMaxSide};

std::string console_path(uint32_t console_id) { return "/org/qemu/Display1/Console_" + std::to_string(console_id); }

// A picture in host memory: the primary's pixels (Scanout/Update) or the cursor image.
struct Picture {
	UniqueFd fd;
	Mapping map;
	uint32_t width = 0, height = 0, stride = 0;
	uint64_t id = 0;

	// A fresh zeroed picture of w x h, 4 bytes a pixel.
	static Result<Picture> make(const char *name, uint32_t w, uint32_t h, uint64_t id) {
		Picture p;
		p.width = w;
		p.height = h;
		p.stride = w * 4;
		p.id = id;
		auto fd = make_memfd(name, size_t(p.stride) * h);
		if (!fd) return fd.take_error();
		p.fd = std::move(*fd);
		auto map = Mapping::map(p.fd.get(), size_t(p.stride) * h, PROT_READ | PROT_WRITE);
		if (!map) return map.take_error();
		p.map = std::move(*map);
		return p;
	}
	uint8_t *row(uint32_t y) const { return map.data() + size_t(y) * stride; }
};

// A new picture of w x h with the old one's pixels where they overlap.
Result<Picture> resized(const Picture &old, uint32_t w, uint32_t h, uint64_t id) {
	auto p = Picture::make("vscanout-qemu", w, h, id);
	if (!p) return p;
	if (old.fd)
		for (uint32_t row = 0; row < std::min(old.height, h); row++)
			std::memcpy(p->row(row), old.row(row), size_t(std::min(old.width, w)) * 4);
	return p;
}

} // namespace

struct QemuSource::Console {
	QemuSource *source = nullptr;
	uint32_t console_id = 0;
	uint32_t head = 0;
	std::string label;
	sd_bus *p2p = nullptr; // QEMU's connection to our listener object
	sd_bus_slot *object = nullptr;
	sd_bus_slot *mouse_match = nullptr; // Mouse.IsAbsolute changes (the guest enables its tablet)
	bool absolute = false;              // Mouse.IsAbsolute
	// Primary plane: pixels in `picture`, or a dma-buf.
	bool primary_on = false;
	Picture picture;
	UniqueFd dmabuf;
	uint32_t dmabuf_format = 0, dmabuf_width = 0, dmabuf_height = 0, dmabuf_stride = 0;
	uint64_t dmabuf_modifier = 0, dmabuf_id = 0;
	bool dmabuf_is_memfd = false; // a sealed memfd handed as a dma-buf: host memory
	bool flipped_logged = false;
	uint64_t damage = 0;
	// Cursor plane: the image (premultiplied ARGB8888), its hotspot, where QEMU puts it.
	Picture cursor;
	int32_t hot_x = 0, hot_y = 0, mouse_x = 0, mouse_y = 0;
	bool mouse_on = false;
	// Refused calls are logged at most once every 10 s for each method (with how many were left
	// out); the keys are the listener vtable's few member names.
	std::map<std::string, log::RateLimit> refused_log;
	// Bytes of new frames made by Update in the current second.
	std::chrono::steady_clock::time_point growth_second{};
	uint64_t growth_bytes = 0;
	bool damaged = false; // an Update since damage was last told to the compositor

	bool live() const { return p2p != nullptr; }
};

void QemuSource::ConsoleDeleter::operator()(Console *c) const { delete c; }

namespace {

// The vtable's callbacks: one C entry point, the member name picks the handler.
int listener_method(sd_bus_message *m, void *userdata, sd_bus_error *) {
	auto *c = static_cast<QemuSource::Console *>(userdata);
	return c->source->on_listener_call(*c, m);
}

const sd_bus_vtable kListenerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Scanout", "uuuuay", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Update", "iiiiuuay", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("ScanoutDMABUF", "huuuutb", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("UpdateDMABUF", "iiii", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Disable", "", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("MouseSet", "iii", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("CursorDefine", "iiiiay", "", listener_method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

} // namespace

namespace {

// "N" -> N within 1..max.
bool parse_bound(const std::string &text, uint32_t max, uint32_t &out) {
	if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return false;
	const unsigned long v = std::stoul(text);
	if (v < 1 || v > max) return false;
	out = static_cast<uint32_t>(v);
	return true;
}

// Takes trailing ",max-heads=N" / ",max-mib=M" off `rest` (a D-Bus address has commas of its
// own, but no such keys).
Status take_limits(std::string &rest, QemuLimits &limits) {
	for (;;) {
		const size_t comma = rest.rfind(',');
		const std::string last = comma == std::string::npos ? rest : rest.substr(comma + 1);
		const bool heads = last.rfind("max-heads=", 0) == 0, mib = last.rfind("max-mib=", 0) == 0;
		if (!heads && !mib) return Ok{};
		const std::string value = last.substr(last.find('=') + 1);
		if (heads && !parse_bound(value, 64, limits.max_heads))
			return fail("max-heads takes 1..64, not '" + value + "'");
		if (mib && !parse_bound(value, 4096, limits.max_mib)) return fail("max-mib takes 1..4096, not '" + value + "'");
		rest.erase(comma == std::string::npos ? 0 : comma);
	}
}

} // namespace

Result<QemuOptions> parse_qemu_spec(const std::string &spec) {
	QemuOptions o;
	if (spec == "qemu") return o;
	if (spec.rfind("qemu:", 0) != 0) return fail("expected qemu, qemu:<D-Bus address> or qemu:qmp:<QMP socket>");
	std::string rest = spec.substr(5);
	const bool had_rest = !rest.empty();
	if (Status s = take_limits(rest, o.limits); !s) return s.take_error();
	if (rest.rfind("qmp:", 0) == 0) {
		o.qmp = rest.substr(4);
		if (o.qmp.empty()) return fail("qemu:qmp: needs the path of QEMU's QMP socket");
		return o;
	}
	o.address = rest;
	if (!had_rest) return fail("qemu: needs a D-Bus address after the colon (e.g. unix:path=/run/qemu-bus)");
	return o; // empty: only limits after the colon, the session bus
}

Status check_scanout(uint32_t w, uint32_t h, uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp) {
	if (w == 0 || h == 0 || w > kMaxSide || h > kMaxSide) return fail("a frame outside 1..16384 pixels a side");
	if (uint64_t{w} * h * 4 > limits.max_frame_bytes())
		return fail("a " + std::to_string(w) + "x" + std::to_string(h) +
		            " frame is past max-mib=" + std::to_string(limits.max_mib));
	if (stride < uint64_t{w} * bpp || bytes < uint64_t{stride} * (h - 1) + uint64_t{w} * bpp)
		return fail("fewer bytes than the rectangle");
	return Ok{};
}

Result<FrameAfterUpdate> frame_after_update(uint32_t fw, uint32_t fh, int32_t x, int32_t y, int32_t w, int32_t h,
                                            uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp) {
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || uint64_t(x) + uint64_t(w) > kMaxSide ||
	    uint64_t(y) + uint64_t(h) > kMaxSide)
		return fail("a rectangle outside 1..16384");
	const auto uw = uint32_t(w), uh = uint32_t(h), ux = uint32_t(x), uy = uint32_t(y);
	if (stride < uint64_t{uw} * bpp || bytes < uint64_t{stride} * (uh - 1) + uint64_t{uw} * bpp)
		return fail("fewer bytes than the rectangle");
	FrameAfterUpdate f;
	// The frame keeps its buffer while the size stays: updates are damage notices. An Update
	// reaching past the frame means a new surface (QEMU 7.2 sends no Scanout when a VGA mode
	// changes): one that starts at the origin begins it (the frame becomes its extent), the next
	// ones grow it.
	const bool outside = uint64_t{ux} + uw > fw || uint64_t{uy} + uh > fh;
	f.keep = !(outside && ux == 0 && uy == 0);
	f.width = f.keep ? std::max(fw, ux + uw) : ux + uw;
	f.height = f.keep ? std::max(fh, uy + uh) : uy + uh;
	f.resized = f.width != fw || f.height != fh;
	if (f.resized && uint64_t{f.width} * f.height * 4 > limits.max_frame_bytes())
		return fail("an update that would make the frame " + std::to_string(f.width) + "x" + std::to_string(f.height) +
		            ", past max-mib=" + std::to_string(limits.max_mib));
	return f;
}

uint32_t qemu_pixel_bytes(uint32_t pixman_format) {
	switch (pixman_format) {
	case kPixmanX8R8G8B8:
	case kPixmanA8R8G8B8: return 4;
	case kPixmanR5G6B5:
	case kPixmanX1R5G5B5: return 2;
	default: return 0;
	}
}

void qemu_row_to_xrgb8888(uint32_t pixman_format, const uint8_t *src, uint8_t *dst, uint32_t pixels) {
	if (qemu_pixel_bytes(pixman_format) == 4) {
		std::memcpy(dst, src, size_t{pixels} * 4);
		return;
	}
	const bool r565 = pixman_format == kPixmanR5G6B5;
	for (uint32_t i = 0; i < pixels; i++) {
		const uint32_t v = uint32_t{src[2 * i]} | uint32_t{src[2 * i + 1]} << 8; // little-endian 16 bits
		const uint32_t r5 = r565 ? v >> 11 : (v >> 10) & 31, b5 = v & 31;
		const uint32_t g = r565 ? ((v >> 5) & 63) * 255 / 63 : ((v >> 5) & 31) * 255 / 31;
		dst[4 * i + 0] = static_cast<uint8_t>(b5 * 255 / 31);
		dst[4 * i + 1] = static_cast<uint8_t>(g);
		dst[4 * i + 2] = static_cast<uint8_t>(r5 * 255 / 31);
		dst[4 * i + 3] = 0xff;
	}
}

uint32_t drm_format_of_pixman(uint32_t pixman_format) {
	switch (pixman_format) {
	case kPixmanX8R8G8B8: return DRM_FORMAT_XRGB8888;
	case kPixmanA8R8G8B8: return DRM_FORMAT_XRGB8888; // a display surface's alpha means nothing
	default: return 0;
	}
}

Result<std::unique_ptr<QemuSource>> QemuSource::create(QemuOptions options) {
	std::unique_ptr<QemuSource> self(new QemuSource(std::move(options)));
	auto loop = dbus::Loop::create();
	if (!loop) return fail("qemu: " + loop.error());
	self->loop_ = std::move(*loop);
	self->frame_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
	if (!self->frame_timer_) return fail(std::string("qemu: timerfd: ") + std::strerror(errno));
	self->loop_.add_fd(self->frame_timer_.get());
	if (Status s = self->connect_bus(); !s) return s.take_error();
	return self;
}

QemuSource::~QemuSource() {
	for (auto &[head, c] : consoles_) {
		if (c->object) sd_bus_slot_unref(c->object);
		if (c->mouse_match) sd_bus_slot_unref(c->mouse_match);
		if (c->p2p) sd_bus_close_unref(c->p2p);
	}
	if (owner_match_) sd_bus_slot_unref(owner_match_);
	if (bus_) sd_bus_flush_close_unref(bus_);
}

Status QemuSource::connect_bus() {
	if (!options_.qmp.empty()) {
		// Peer to peer: QEMU's reconnections are ours to make, so a timer of our own.
		reconnect_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
		if (!reconnect_) return fail(std::string("qemu: timerfd: ") + std::strerror(errno));
		loop_.add_fd(reconnect_.get());
		connect_p2p();
		return Ok{};
	}
	std::string address = options_.address;
	if (address.empty()) {
		const char *env = std::getenv("DBUS_SESSION_BUS_ADDRESS");
		if (!env || !*env)
			return fail("qemu: no session bus (DBUS_SESSION_BUS_ADDRESS is not set); "
			            "give the bus QEMU uses: --source qemu:<address>");
		address = env;
	}
	int r = sd_bus_new(&bus_);
	if (r >= 0) r = sd_bus_set_address(bus_, address.c_str());
	if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
	if (r >= 0) r = sd_bus_negotiate_fds(bus_, 1);
	if (r >= 0) r = sd_bus_start(bus_);
	if (r < 0) return fail("qemu: cannot connect to the D-Bus bus " + address + ": " + errno_text(r));
	// QEMU coming and going: org.qemu changes owner.
	const std::string rule = std::string("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
	                                     "member='NameOwnerChanged',arg0='") +
	                         kService + "'";
	r = sd_bus_add_match_async(
	    bus_, &owner_match_, rule.c_str(),
	    [](sd_bus_message *m, void *userdata, sd_bus_error *) {
		    auto *self = static_cast<QemuSource *>(userdata);
		    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
		    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
		    if (new_owner && *new_owner) {
			    VLOG_INFO("qemu: a QEMU appeared on the bus");
			    self->enumerate();
		    } else {
			    self->lose_all("QEMU left the bus");
		    }
		    return 0;
	    },
	    nullptr, this);
	if (r < 0) return fail("qemu: cannot watch for QEMU on the bus: " + errno_text(r));
	loop_.add(bus_);
	VLOG_INFO("qemu: on the D-Bus bus %s", address.c_str());
	enumerate();
	loop_.refresh();
	return Ok{};
}

namespace {

void arm(int timer, std::chrono::milliseconds in) {
	itimerspec its{};
	its.it_value.tv_sec = static_cast<time_t>(in.count() / 1000);
	its.it_value.tv_nsec = static_cast<long>(in.count() % 1000) * 1000000L;
	if (in.count() <= 0) its.it_value.tv_nsec = 1;
	::timerfd_settime(timer, 0, &its, nullptr);
}

constexpr std::chrono::milliseconds kQmpTimeout{2000}, kQmpRetry{1000};
constexpr std::chrono::milliseconds kFrame{16}; // damage is told at most this often per head

} // namespace

// Asks QEMU's QMP socket for a connection: the request goes on in dispatch() as QMP answers, and
// the reconnect timer bounds it (kQmpTimeout). Nothing here waits.
void QemuSource::start_qmp() {
	auto req = QmpDisplayRequest::start(options_.qmp);
	if (!req) return qmp_failed(req.error());
	qmp_ = std::move(*req);
	loop_.watch_fd(qmp_->fd(), qmp_->wants_write());
	arm(reconnect_.get(), kQmpTimeout);
}

void QemuSource::qmp_failed(std::string why) { // a copy: it may be the request's own text
	if (qmp_) {
		if (qmp_->fd() >= 0) loop_.unwatch_fd(qmp_->fd());
		qmp_.reset();
	}
	if (!waiting_logged_)
		VLOG_INFO("qemu: %s; waiting for QEMU", log::escape(why).c_str());
	else
		VLOG_DEBUG("qemu: %s", log::escape(why).c_str());
	waiting_logged_ = true;
	arm(reconnect_.get(), kQmpRetry); // try again in a second
}

void QemuSource::connect_p2p() {
	if (!qmp_) return start_qmp();
	const int qmp_fd = qmp_->fd();
	const auto progress = qmp_->advance();
	if (progress == QmpDisplayRequest::Progress::pending) {
		loop_.watch_fd(qmp_fd, qmp_->wants_write());
		return;
	}
	if (progress == QmpDisplayRequest::Progress::failed) return qmp_failed(qmp_->error());
	loop_.unwatch_fd(qmp_fd); // closed already: QEMU's monitor is free again
	UniqueFd conn = qmp_->take_connection();
	qmp_.reset();
	const itimerspec disarmed{};
	::timerfd_settime(reconnect_.get(), 0, &disarmed, nullptr);
	// QEMU is the authentication server of the connection it was handed, and no message bus.
	int r = sd_bus_new(&bus_);
	if (r >= 0) r = sd_bus_set_fd(bus_, conn.get(), conn.get());
	if (r >= 0) conn.release(); // the connection owns it now
	if (r >= 0) r = sd_bus_negotiate_fds(bus_, 1);
	if (r >= 0) r = sd_bus_start(bus_);
	if (r < 0) {
		VLOG_ERROR("qemu: cannot set up the connection QEMU gave over QMP: %s", errno_text(r).c_str());
		if (bus_) bus_ = sd_bus_close_unref(bus_);
		arm(reconnect_.get(), kQmpRetry);
		return;
	}
	waiting_logged_ = false;
	loop_.add(bus_);
	VLOG_INFO("qemu: connected to QEMU's display peer to peer (QMP %s)", options_.qmp.c_str());
	enumerate();
	loop_.refresh();
}

void QemuSource::call(sd_bus_message *msg, std::function<void(sd_bus_message *)> on_reply_fn) {
	dbus::call(bus_, msg, std::move(on_reply_fn));
}

void QemuSource::enumerate() {
	const uint64_t gen = ++generation_;
	sd_bus_message *m = nullptr;
	if (sd_bus_message_new_method_call(bus_, &m, dest(), kVmPath, "org.freedesktop.DBus.Properties", "GetAll") < 0 ||
	    sd_bus_message_append(m, "s", "org.qemu.Display1.VM") < 0) {
		sd_bus_message_unref(m);
		return;
	}
	call(m, [this, gen](sd_bus_message *reply) {
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
			sd_bus_message *q = nullptr;
			const std::string path = console_path(id);
			if (sd_bus_message_new_method_call(bus_, &q, dest(), path.c_str(), "org.freedesktop.DBus.Properties",
			                                   "GetAll") < 0 ||
			    sd_bus_message_append(q, "s", "org.qemu.Display1.Console") < 0) {
				sd_bus_message_unref(q);
				continue;
			}
			call(q, [this, gen, id](sd_bus_message *r) {
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
					for (size_t k = 0; k < left_out_.size() && k < 16; k++)
						list += (k ? ", " : "") + std::to_string(left_out_[k]);
					if (left_out_.size() > 16) list += ", ...";
					VLOG_ERROR("qemu: %zu graphic console(s) left out, at most %u heads are shown (max-heads=%u): "
					           "console ids %s",
					           left_out_.size(), options_.limits.max_heads, options_.limits.max_heads, list.c_str());
					left_out_.clear();
				}
			});
		}
	});
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

	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
		VLOG_ERROR("qemu: head %u: socketpair: %s", head, std::strerror(errno));
		return;
	}
	UniqueFd ours(sv[0]), theirs(sv[1]);
	// On this connection QEMU is the authentication server and we the client, though QEMU
	// makes the calls. The object is in place before the first message can arrive.
	sd_bus *p2p = nullptr;
	int r = sd_bus_new(&p2p);
	if (r >= 0) r = sd_bus_set_fd(p2p, ours.get(), ours.get());
	if (r >= 0) ours.release(); // the bus owns it now
	if (r >= 0) r = sd_bus_negotiate_fds(p2p, 1);
	if (r >= 0)
		r = sd_bus_add_object_vtable(p2p, &c.object, kListenerPath, "org.qemu.Display1.Listener", kListenerVtable, &c);
	if (r >= 0) r = sd_bus_start(p2p);
	if (r < 0) {
		VLOG_ERROR("qemu: head %u: cannot set up the listener connection: %s", head, errno_text(r).c_str());
		if (c.object) c.object = sd_bus_slot_unref(c.object);
		sd_bus_close_unref(p2p);
		return;
	}
	c.p2p = p2p;
	loop_.add(p2p);

	const std::string path = console_path(console_id);
	sd_bus_message *m = nullptr;
	if (sd_bus_message_new_method_call(bus_, &m, dest(), path.c_str(), "org.qemu.Display1.Console",
	                                   "RegisterListener") >= 0 &&
	    sd_bus_message_append(m, "h", theirs.get()) >= 0) {
		// The message holds its own copy of QEMU's end until it is sent; ours closes now, so
		// QEMU's exit shows up as the end of the connection.
		theirs.reset();
		call(m, [this, head](sd_bus_message *reply) {
			if (const char *err = error_of(reply)) {
				VLOG_ERROR("qemu: head %u: RegisterListener failed: %s", head, log::escape(err).c_str());
				if (Console *c = console(head)) lose_console(*c, "its listener was refused");
			}
		});
	} else {
		sd_bus_message_unref(m);
	}
	// Whether QEMU's pointer is absolute (a tablet): then positions go as SetAbsPosition. It
	// changes when the guest's driver takes or leaves its tablet.
	const std::string rule = "type='signal'," + std::string(dest() ? "sender='org.qemu'," : "") + "path='" + path +
	                         "',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'," +
	                         "arg0='org.qemu.Display1.Mouse'";
	r = sd_bus_add_match_async(
	    bus_, &c.mouse_match, rule.c_str(),
	    [](sd_bus_message *m, void *userdata, sd_bus_error *) {
		    auto *c = static_cast<Console *>(userdata);
		    const char *iface = nullptr;
		    std::map<std::string, Prop> changed;
		    if (sd_bus_message_read(m, "s", &iface) >= 0 && read_props(m, changed) && changed.count("IsAbsolute")) {
			    c->absolute = changed["IsAbsolute"].b;
			    VLOG_INFO("qemu: head %u: the guest's pointer is %s", c->head, c->absolute ? "absolute" : "relative");
		    }
		    return 0;
	    },
	    nullptr, &c);
	if (r < 0) VLOG_ERROR("qemu: head %u: cannot follow the pointer mode: %s", head, errno_text(r).c_str());
	sd_bus_message *q = nullptr;
	if (sd_bus_message_new_method_call(bus_, &q, dest(), path.c_str(), "org.freedesktop.DBus.Properties", "Get") >= 0 &&
	    sd_bus_message_append(q, "ss", "org.qemu.Display1.Mouse", "IsAbsolute") >= 0) {
		call(q, [this, head](sd_bus_message *reply) {
			int b = 0;
			Console *c = console(head);
			if (c && !error_of(reply) && sd_bus_message_read(reply, "v", "b", &b) >= 0) c->absolute = b != 0;
		});
	} else {
		sd_bus_message_unref(q);
	}
	VLOG_INFO("qemu: head %u is console %u '%s'", head, console_id, log::escape(label, 64).c_str());
	if (is_new) {
		if (events_.head_added) events_.head_added(head);
	} else if (events_.head_changed) {
		events_.head_changed(head);
	}
}

void QemuSource::lose_console(Console &c, const char *why) {
	if (!c.live()) return;
	VLOG_INFO("qemu: head %u (console %u): %s; showing no signal", c.head, c.console_id, why);
	loop_.remove(c.p2p);
	if (c.object) c.object = sd_bus_slot_unref(c.object);
	if (c.mouse_match) c.mouse_match = sd_bus_slot_unref(c.mouse_match);
	c.p2p = sd_bus_close_unref(c.p2p);
	c.primary_on = false;
	c.picture = Picture{};
	c.dmabuf.reset();
	c.cursor = Picture{};
	c.mouse_on = false;
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

int QemuSource::on_listener_call(Console &c, sd_bus_message *m) {
	const char *member = sd_bus_message_get_member(m);
	auto bad = [&](const std::string &why) {
		auto &limit = c.refused_log.try_emplace(member, std::chrono::seconds(10)).first->second;
		if (limit.allow()) {
			const uint64_t left_out = limit.suppressed();
			VLOG_ERROR("qemu: head %u: %s refused: %s%s", c.head, member, why.c_str(),
			           left_out ? (" (" + std::to_string(left_out) + " more refused calls not logged)").c_str() : "");
		}
		return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_INVALID_ARGS, "%s", why.c_str());
	};
	bool coalesce = false; // damage on the same buffer: told once a frame, not once a call
	if (std::strcmp(member, "Scanout") == 0 || std::strcmp(member, "Update") == 0) {
		const bool full = member[0] == 'S';
		int32_t x = 0, y = 0, iw = 0, ih = 0;
		uint32_t w = 0, h = 0, stride = 0, format = 0;
		int r;
		if (full)
			r = sd_bus_message_read(m, "uuuu", &w, &h, &stride, &format);
		else
			r = sd_bus_message_read(m, "iiiiuu", &x, &y, &iw, &ih, &stride, &format);
		const void *data = nullptr;
		size_t size = 0;
		if (r < 0 || sd_bus_message_read_array(m, 'y', &data, &size) < 0) return bad("malformed arguments");
		// 32-bpp surfaces as they are; 16- and 15-bpp ones (a guest's 16-bit mode) become
		// XRGB8888 in our frame as they are copied in.
		const uint32_t bpp = qemu_pixel_bytes(format);
		if (!bpp) return bad("a surface format other than x8r8g8b8, a8r8g8b8, r5g6b5 and x1r5g5b5");
		const QemuLimits &limits = options_.limits;
		uint32_t need_w = w, need_h = h;
		bool keep = false;
		if (full) {
			if (Status st = check_scanout(w, h, stride, size, limits, bpp); !st) return bad(st.error());
		} else {
			auto f = frame_after_update(c.picture.width, c.picture.height, x, y, iw, ih, stride, size, limits, bpp);
			if (!f) return bad(f.error());
			w = uint32_t(iw);
			h = uint32_t(ih);
			need_w = f->width;
			need_h = f->height;
			keep = f->keep;
			if (f->resized) {
				// How often: each new size is a new buffer (and import, and output mode).
				const auto now = std::chrono::steady_clock::now();
				if (now - c.growth_second >= std::chrono::seconds(1)) {
					c.growth_second = now;
					c.growth_bytes = 0;
				}
				const uint64_t bytes = uint64_t{f->width} * f->height * 4;
				if (c.growth_bytes + bytes > QemuLimits::kUpdateGrowthFramesPerSecond * limits.max_frame_bytes())
					return bad("Updates making new frames of more than " +
					           std::to_string(QemuLimits::kUpdateGrowthFramesPerSecond * limits.max_mib) +
					           " MiB in a second");
				c.growth_bytes += bytes;
			}
		}
		if (!c.picture.fd || c.picture.width != need_w || c.picture.height != need_h) {
			auto p = keep ? resized(c.picture, need_w, need_h, next_buffer_id_++)
			              : Picture::make("vscanout-qemu", need_w, need_h, next_buffer_id_++);
			if (!p) return bad(p.error());
			if (!full) VLOG_DEBUG("qemu: head %u: an update outside the frame: now %ux%u", c.head, need_w, need_h);
			c.picture = std::move(*p);
		} else if (!full && c.primary_on && !c.dmabuf) {
			coalesce = true;
		}
		for (uint32_t row = 0; row < h; row++)
			qemu_row_to_xrgb8888(format, static_cast<const uint8_t *>(data) + size_t(row) * stride,
			                     c.picture.row(uint32_t(y) + row) + size_t(x) * 4, w);
		c.dmabuf.reset();
		c.primary_on = true;
		c.damage++;
	} else if (std::strcmp(member, "ScanoutDMABUF") == 0) {
		int fd = -1, y0_top = 1;
		uint32_t w = 0, h = 0, stride = 0, fourcc = 0;
		uint64_t modifier = 0;
		if (sd_bus_message_read(m, "huuuutb", &fd, &w, &h, &stride, &fourcc, &modifier, &y0_top) < 0)
			return bad("malformed arguments");
		if (w == 0 || h == 0 || w > kMaxSide || h > kMaxSide) return bad("a frame outside 1..16384 pixels a side");
		if (uint64_t{w} * h * 4 > options_.limits.max_frame_bytes())
			return bad("a " + std::to_string(w) + "x" + std::to_string(h) +
			           " dma-buf is past max-mib=" + std::to_string(options_.limits.max_mib));
		// Only what QEMU cannot shrink under a mapping of ours (a shrunk memfd is SIGBUS in
		// whoever reads it): a real dma-buf, or a memfd sealed against shrinking.
		const bool real_dmabuf = fd_is_dmabuf(fd);
		if (!real_dmabuf && !fd_sealed_against_shrink(fd))
			return bad("the fd is neither a dma-buf nor a memfd sealed against shrinking");
		UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
		if (!dup) return bad("cannot keep the dma-buf");
		// QEMU's y0_top follows GL's row order, not memory's: a VFIO display's dma-buf comes with
		// it false and is top-down in memory, as vscanout reads every buffer. A GL-rendered
		// scanout (virgl) may mean it otherwise; that is untried here (no GPU), so say so once.
		if (y0_top && !c.flipped_logged) {
			VLOG_INFO("qemu: head %u: a dma-buf with y0_top set; shown with its first row at the top", c.head);
			c.flipped_logged = true;
		}
		c.dmabuf = std::move(dup);
		c.dmabuf_width = w;
		c.dmabuf_height = h;
		c.dmabuf_stride = stride;
		c.dmabuf_format = fourcc;
		c.dmabuf_modifier = modifier;
		c.dmabuf_id = next_buffer_id_++;
		c.dmabuf_is_memfd = !real_dmabuf;
		c.picture = Picture{};
		c.primary_on = true;
	} else if (std::strcmp(member, "UpdateDMABUF") == 0) {
		if (!c.dmabuf) return bad("no dma-buf to update");
		c.damage++;
		coalesce = true;
	} else if (std::strcmp(member, "Disable") == 0) {
		c.primary_on = false;
		c.picture = Picture{};
		c.dmabuf.reset();
	} else if (std::strcmp(member, "MouseSet") == 0) {
		int32_t on = 0;
		int32_t mx = 0, my = 0;
		if (sd_bus_message_read(m, "iii", &mx, &my, &on) < 0) return bad("malformed arguments");
		c.mouse_x = std::clamp(mx, -kMaxCursorPos, kMaxCursorPos);
		c.mouse_y = std::clamp(my, -kMaxCursorPos, kMaxCursorPos);
		c.mouse_on = on != 0;
	} else if (std::strcmp(member, "CursorDefine") == 0) {
		int32_t w = 0, h = 0, hx = 0, hy = 0;
		const void *data = nullptr;
		size_t size = 0;
		if (sd_bus_message_read(m, "iiii", &w, &h, &hx, &hy) < 0 || sd_bus_message_read_array(m, 'y', &data, &size) < 0)
			return bad("malformed arguments");
		if (w <= 0 || h <= 0 || w > 512 || h > 512) return bad("a cursor outside 1..512 pixels");
		if (size < size_t(w) * size_t(h) * 4) return bad("fewer bytes than the cursor");
		auto p = Picture::make("vscanout-qemu-cursor", uint32_t(w), uint32_t(h), next_buffer_id_++);
		if (!p) return bad(p.error().c_str());
		// QEMU's cursor is straight ARGB; planes and our renderer take it premultiplied.
		const auto *src = static_cast<const uint8_t *>(data);
		for (size_t i = 0; i < size_t(w) * size_t(h); i++) {
			const uint8_t *s = src + i * 4;
			uint8_t *d = p->map.data() + i * 4;
			const uint32_t a = s[3];
			for (int k = 0; k < 3; k++) d[k] = static_cast<uint8_t>((s[k] * a + 127) / 255);
			d[3] = static_cast<uint8_t>(a);
		}
		c.cursor = std::move(*p);
		c.hot_x = std::clamp(hx, 0, w - 1); // inside the image: never a negative (huge unsigned) hotspot
		c.hot_y = std::clamp(hy, 0, h - 1);
	}
	if (coalesce)
		c.damaged = true; // told at the next frame (flush_damage)
	else if (events_.head_changed)
		events_.head_changed(c.head);
	return sd_bus_reply_method_return(m, "");
}

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
	if (!c->primary_on) return p;
	if (type == PlaneType::primary) {
		p.state = PlaneState::enabled;
		if (c->dmabuf) {
			p.drm_format = c->dmabuf_format;
			p.drm_format_mod = c->dmabuf_modifier;
			p.width = c->dmabuf_width;
			p.height = c->dmabuf_height;
			p.stride = c->dmabuf_stride;
			p.buffer_id = c->dmabuf_id;
		} else {
			p.drm_format = DRM_FORMAT_XRGB8888;
			p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
			p.width = c->picture.width;
			p.height = c->picture.height;
			p.stride = c->picture.stride;
			p.buffer_id = c->picture.id;
		}
		p.size = p.stride * p.height;
		return p;
	}
	if (!c->cursor.fd || !c->mouse_on) return p;
	p.state = PlaneState::enabled;
	p.drm_format = DRM_FORMAT_ARGB8888;
	p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	p.width = c->cursor.width;
	p.height = c->cursor.height;
	p.stride = c->cursor.stride;
	p.size = p.stride * p.height;
	p.buffer_id = c->cursor.id;
	// MouseSet gives the image's top-left, as the guest placed its cursor plane: virtio-gpu
	// passes the plane's CRTC position on unchanged (Linux virtgpu_plane.c: pos = crtc_x, the
	// hotspot separately). That is the plane's position here too.
	p.x_hot = static_cast<uint32_t>(c->hot_x);
	p.y_hot = static_cast<uint32_t>(c->hot_y);
	p.x_pos = c->mouse_x;
	p.y_pos = c->mouse_y;
	return p;
}

Result<GuestBuffer> QemuSource::open_buffer(const PlaneInfo &plane) {
	const Console *c = console(plane.head_id);
	if (!c) return fail("qemu: no head " + std::to_string(plane.head_id));
	int fd = -1;
	BufferKind kind = BufferKind::memfd;
	if (plane.type == PlaneType::cursor && c->cursor.fd && c->cursor.id == plane.buffer_id) {
		fd = c->cursor.fd.get();
	} else if (plane.type == PlaneType::primary && c->picture.fd && c->picture.id == plane.buffer_id) {
		fd = c->picture.fd.get();
	} else if (plane.type == PlaneType::primary && c->dmabuf && c->dmabuf_id == plane.buffer_id) {
		fd = c->dmabuf.get();
		kind = c->dmabuf_is_memfd ? BufferKind::memfd : BufferKind::dmabuf;
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
	return c ? c->damage : 0;
}

bool QemuSource::connected(uint32_t head) const {
	const Console *c = console(head);
	return c && c->live();
}

void QemuSource::dispatch(int fd) {
	if (fd != loop_.fd()) return;
	loop_.wake();
	// A few connections: process them all. Handlers may drop a console, so go by head id.
	if (bus_ && (dbus::Loop::process(bus_) < 0 || sd_bus_is_open(bus_) <= 0)) {
		if (options_.qmp.empty()) VLOG_ERROR("qemu: lost the D-Bus bus; no QEMU can be shown any more");
		lose_all(options_.qmp.empty() ? "the bus went away" : "QEMU closed the connection");
		loop_.remove(bus_);
		bus_ = sd_bus_close_unref(bus_);
		if (!options_.qmp.empty() && !ended_) connect_p2p(); // the next QEMU on the same QMP socket
	}
	uint64_t expirations;
	if (reconnect_ && ::read(reconnect_.get(), &expirations, sizeof expirations) > 0 && !bus_) {
		if (qmp_)
			qmp_failed("QMP " + options_.qmp + ": no answer in " + std::to_string(kQmpTimeout.count()) + " ms");
		else
			connect_p2p();
	} else if (qmp_) {
		connect_p2p(); // the request goes on with what QMP said
	}
	std::vector<uint32_t> live;
	for (auto &[head, c] : consoles_)
		if (c->live()) live.push_back(head);
	for (uint32_t head : live) {
		Console *c = console(head);
		if (!c || !c->live()) continue;
		const int r = dbus::Loop::process(c->p2p);
		if (r < 0 || sd_bus_is_open(c->p2p) <= 0) lose_console(*c, "QEMU closed the connection");
	}
	const bool frame_due = ::read(frame_timer_.get(), &expirations, sizeof expirations) > 0;
	flush_damage(frame_due);
	loop_.refresh();
}

// Damage from Updates on the buffer already shown is told to the compositor once a frame (every
// kFrame at most), however many Updates came: one poll, one copy, for all of them.
void QemuSource::flush_damage(bool timer_fired) {
	bool any = false;
	for (auto &[head, c] : consoles_) any = any || c->damaged;
	if (!any) return;
	const auto now = std::chrono::steady_clock::now();
	const auto since = now - last_flush_;
	if (!timer_fired && since < kFrame) {
		itimerspec its{};
		if (::timerfd_gettime(frame_timer_.get(), &its) == 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			arm(frame_timer_.get(),
			    std::chrono::duration_cast<std::chrono::milliseconds>(kFrame - since) + std::chrono::milliseconds(1));
		return;
	}
	last_flush_ = now;
	std::vector<uint32_t> heads;
	for (auto &[head, c] : consoles_)
		if (c->damaged) {
			c->damaged = false;
			heads.push_back(head);
		}
	for (uint32_t head : heads)
		if (events_.head_changed) events_.head_changed(head);
}

// ---- input

void QemuSource::call_console(uint32_t head, const char *iface, const char *member, const char *types, uint32_t a,
                              uint32_t b) {
	Console *c = console(head);
	if (!c || !c->live() || !bus_) return;
	sd_bus_message *m = nullptr;
	const std::string path = console_path(c->console_id);
	if (sd_bus_message_new_method_call(bus_, &m, dest(), path.c_str(), iface, member) < 0) return;
	int r = std::strlen(types) == 2 ? sd_bus_message_append(m, types, a, b) : sd_bus_message_append(m, types, a);
	if (r < 0) {
		sd_bus_message_unref(m);
		return;
	}
	call(m, [head, member](sd_bus_message *reply) {
		if (const char *err = error_of(reply)) VLOG_DEBUG("qemu: head %u: %s: %s", head, member, err);
	});
	loop_.refresh();
}

void QemuSource::key(uint32_t head, uint32_t evdev_code, bool pressed) {
	const uint32_t qnum = qemu_key_number(evdev_code);
	if (!qnum) {
		VLOG_DEBUG("qemu: no QEMU key number for evdev key %u; dropped", evdev_code);
		return;
	}
	call_console(head, "org.qemu.Display1.Keyboard", pressed ? "Press" : "Release", "u", qnum);
}

void QemuSource::pointer_button(uint32_t head, uint32_t evdev_button, bool pressed) {
	const int b = qemu_button(evdev_button);
	if (b < 0) return;
	call_console(head, "org.qemu.Display1.Mouse", pressed ? "Press" : "Release", "u", static_cast<uint32_t>(b));
}

void QemuSource::pointer_to(uint32_t head, uint32_t x, uint32_t y) {
	call_console(head, "org.qemu.Display1.Mouse", "SetAbsPosition", "uu", x, y);
}

void QemuSource::pointer_by(uint32_t head, int32_t dx, int32_t dy) {
	call_console(head, "org.qemu.Display1.Mouse", "RelMotion", "ii", static_cast<uint32_t>(dx),
	             static_cast<uint32_t>(dy));
}

void QemuSource::pointer_wheel(uint32_t head, int32_t steps) {
	// QEMU's wheel is two buttons (3 up, 4 down), pressed and released once a step.
	// A wheel event is a few steps; a client's huge (or INT32_MIN) value is capped, not looped over.
	const uint32_t button = steps > 0 ? 4 : 3;
	const int64_t n = std::min<int64_t>(kMaxWheelSteps, steps < 0 ? -int64_t{steps} : int64_t{steps});
	for (int64_t i = 0; i < n; i++) {
		call_console(head, "org.qemu.Display1.Mouse", "Press", "u", button);
		call_console(head, "org.qemu.Display1.Mouse", "Release", "u", button);
	}
}

bool QemuSource::pointer_absolute(uint32_t head) const {
	const Console *c = console(head);
	return c && c->absolute;
}

void QemuSource::window_resized(uint32_t head, uint32_t width, uint32_t height) {
	Console *c = console(head);
	if (!c || !c->live() || !bus_) return;
	sd_bus_message *m = nullptr;
	const std::string path = console_path(c->console_id);
	if (sd_bus_message_new_method_call(bus_, &m, dest(), path.c_str(), "org.qemu.Display1.Console", "SetUIInfo") < 0)
		return;
	// Physical size unknown (0 mm); the window sits at the origin.
	if (sd_bus_message_append(m, "qqiiuu", uint16_t{0}, uint16_t{0}, int32_t{0}, int32_t{0}, width, height) < 0) {
		sd_bus_message_unref(m);
		return;
	}
	call(m, [head](sd_bus_message *reply) {
		if (const char *err = error_of(reply)) VLOG_DEBUG("qemu: head %u: SetUIInfo: %s", head, err);
	});
	loop_.refresh();
}

} // namespace vscanout::vgpu
