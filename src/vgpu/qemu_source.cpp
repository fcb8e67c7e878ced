// The QEMU source's connection to QEMU: the session bus (or an address), or peer to peer from
// QEMU's QMP socket; dispatch from the compositor's event loop, Update damage told once a frame,
// and input going back to the guest. Consoles: qemu_console.cpp; listener calls: qemu_listener.cpp.
#include "vgpu/qemu_source.hpp"

#include <sys/timerfd.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.hpp"
#include "vgpu/dbus_loop.hpp"
#include "vgpu/qemu_console.hpp"
#include "vgpu/qemu_qmp.hpp"

namespace vscanout::vgpu {
namespace {

using dbus::errno_text;
using dbus::error_of;

constexpr const char *kService = "org.qemu";
constexpr int64_t kMaxWheelSteps = 16; // per wheel event

} // namespace

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
	consoles_.clear(); // their slots on bus_ go first
	owner_match_.reset();
	if (bus_) sd_bus_flush(bus_.get()); // what is queued for QEMU (input) still goes
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
	int r = sd_bus_new(bus_.out());
	if (r >= 0) r = sd_bus_set_address(bus_.get(), address.c_str());
	if (r >= 0) r = sd_bus_set_bus_client(bus_.get(), 1);
	if (r >= 0) r = sd_bus_negotiate_fds(bus_.get(), 1);
	if (r >= 0) r = sd_bus_start(bus_.get());
	if (r < 0) return fail("qemu: cannot connect to the D-Bus bus " + address + ": " + errno_text(r));
	// QEMU coming and going: org.qemu changes owner.
	const std::string rule = std::string("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
	                                     "member='NameOwnerChanged',arg0='") +
	                         kService + "'";
	r = sd_bus_add_match_async(
	    bus_.get(), owner_match_.out(), rule.c_str(),
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
	loop_.add(bus_.get());
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
	int r = sd_bus_new(bus_.out());
	if (r >= 0) r = sd_bus_set_fd(bus_.get(), conn.get(), conn.get());
	if (r >= 0) conn.release(); // the connection owns it now
	if (r >= 0) r = sd_bus_negotiate_fds(bus_.get(), 1);
	if (r >= 0) r = sd_bus_start(bus_.get());
	if (r < 0) {
		VLOG_ERROR("qemu: cannot set up the connection QEMU gave over QMP: %s", errno_text(r).c_str());
		bus_.reset();
		arm(reconnect_.get(), kQmpRetry);
		return;
	}
	waiting_logged_ = false;
	loop_.add(bus_.get());
	VLOG_INFO("qemu: connected to QEMU's display peer to peer (QMP %s)", options_.qmp.c_str());
	enumerate();
	loop_.refresh();
}

void QemuSource::call(dbus::Message msg, std::function<void(sd_bus_message *)> on_reply_fn) {
	dbus::call(bus_.get(), std::move(msg), std::move(on_reply_fn));
}

void QemuSource::dispatch(int fd) {
	if (fd != loop_.fd()) return;
	loop_.wake();
	// A few connections: process them all. Handlers may drop a console, so go by head id.
	if (bus_ && (dbus::Loop::process(bus_.get()) < 0 || sd_bus_is_open(bus_.get()) <= 0)) {
		if (options_.qmp.empty()) VLOG_ERROR("qemu: lost the D-Bus bus; no QEMU can be shown any more");
		lose_all(options_.qmp.empty() ? "the bus went away" : "QEMU closed the connection");
		loop_.remove(bus_.get());
		owner_match_.reset();
		bus_.reset();
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
		const int r = dbus::Loop::process(c->p2p.get());
		if (r < 0 || sd_bus_is_open(c->p2p.get()) <= 0) lose_console(*c, "QEMU closed the connection");
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
	dbus::Message m = new_call(qemu_console_path(c->console_id), iface, member);
	if (!m) return;
	const int r = std::strlen(types) == 2 ? sd_bus_message_append(m.get(), types, a, b)
	                                      : sd_bus_message_append(m.get(), types, a);
	if (r < 0) return;
	call(std::move(m), [head, member](sd_bus_message *reply) {
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
	dbus::Message m = new_call(qemu_console_path(c->console_id), "org.qemu.Display1.Console", "SetUIInfo");
	// Physical size unknown (0 mm); the window sits at the origin.
	if (!m ||
	    sd_bus_message_append(m.get(), "qqiiuu", uint16_t{0}, uint16_t{0}, int32_t{0}, int32_t{0}, width, height) < 0)
		return;
	call(std::move(m), [head](sd_bus_message *reply) {
		if (const char *err = error_of(reply)) VLOG_DEBUG("qemu: head %u: SetUIInfo: %s", head, err);
	});
	loop_.refresh();
}

} // namespace vscanout::vgpu
