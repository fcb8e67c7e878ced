#include "vgpu/dbus_loop.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace vscanout::vgpu::dbus {
namespace {

struct Pending {
	std::function<void(sd_bus_message *)> fn;
};

int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *) {
	static_cast<Pending *>(userdata)->fn(m);
	return 0;
}

void on_pending_destroy(void *userdata) { delete static_cast<Pending *>(userdata); }

} // namespace

std::string errno_text(int e) { return std::strerror(e < 0 ? -e : e); }

bool read_props(sd_bus_message *m, std::map<std::string, Prop> &out) {
	if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return false;
	while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
		const char *key = nullptr;
		if (sd_bus_message_read(m, "s", &key) < 0) return false;
		const char *contents = nullptr;
		if (sd_bus_message_peek_type(m, nullptr, &contents) < 0) return false;
		Prop p;
		bool ok = true;
		if (std::strcmp(contents, "s") == 0) {
			const char *s = nullptr;
			ok = sd_bus_message_read(m, "v", "s", &s) >= 0;
			if (ok && s) p.s = s;
		} else if (std::strcmp(contents, "u") == 0) {
			uint32_t u = 0;
			ok = sd_bus_message_read(m, "v", "u", &u) >= 0;
			p.u = u;
		} else if (std::strcmp(contents, "b") == 0) {
			int b = 0;
			ok = sd_bus_message_read(m, "v", "b", &b) >= 0;
			p.b = b != 0;
		} else if (std::strcmp(contents, "au") == 0) {
			ok = sd_bus_message_enter_container(m, 'v', "au") >= 0;
			const void *data = nullptr;
			size_t size = 0;
			ok = ok && sd_bus_message_read_array(m, 'u', &data, &size) >= 0;
			if (ok && size) {
				p.au.resize(size / sizeof(uint32_t));
				std::memcpy(p.au.data(), data, p.au.size() * sizeof(uint32_t));
			}
			ok = ok && sd_bus_message_exit_container(m) >= 0;
		} else {
			ok = sd_bus_message_skip(m, "v") >= 0;
		}
		if (!ok || sd_bus_message_exit_container(m) < 0) return false;
		out[key] = std::move(p);
	}
	return sd_bus_message_exit_container(m) >= 0;
}

const char *error_of(sd_bus_message *reply) {
	const sd_bus_error *e = sd_bus_message_get_error(reply);
	return e ? (e->message ? e->message : e->name) : nullptr;
}

void call(sd_bus *bus, Message msg, std::function<void(sd_bus_message *)> on_reply_fn) {
	Slot slot;
	auto *p = new Pending{std::move(on_reply_fn)};
	const int r = sd_bus_call_async(bus, slot.out(), msg.get(), on_reply, p, 0);
	if (r < 0) {
		delete p;
		VLOG_ERROR("dbus: a call failed: %s", errno_text(r).c_str());
		return;
	}
	// The connection owns the slot from now on; the Pending goes with it, answered or not.
	sd_bus_slot_set_destroy_callback(slot.get(), on_pending_destroy);
	sd_bus_slot_set_floating(slot.get(), 1);
}

Result<Loop> Loop::create() {
	Loop l;
	l.epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
	l.timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
	if (!l.epoll_ || !l.timer_) return fail(std::string("dbus: ") + std::strerror(errno));
	epoll_event ev{};
	ev.events = EPOLLIN;
	if (::epoll_ctl(l.epoll_.get(), EPOLL_CTL_ADD, l.timer_.get(), &ev) != 0)
		return fail(std::string("dbus: epoll_ctl: ") + std::strerror(errno));
	return l;
}

void Loop::ctl(int op, int fd, epoll_event *ev) const {
	// A failed ADD or MOD leaves a connection deaf: say so. DEL of what is already gone is fine.
	if (::epoll_ctl(epoll_.get(), op, fd, ev) != 0 && !(op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF)))
		VLOG_ERROR("dbus: epoll_ctl(%s, fd %d): %s",
		           op == EPOLL_CTL_ADD   ? "add"
		           : op == EPOLL_CTL_MOD ? "mod"
		                                 : "del",
		           fd, std::strerror(errno));
}

void Loop::add(sd_bus *bus) {
	epoll_event ev{};
	ev.events = EPOLLIN;
	ev.data.ptr = bus;
	ctl(EPOLL_CTL_ADD, sd_bus_get_fd(bus), &ev);
	buses_.push_back(bus);
}

void Loop::add_fd(int fd) {
	epoll_event ev{};
	ev.events = EPOLLIN;
	ctl(EPOLL_CTL_ADD, fd, &ev);
}

void Loop::watch_fd(int fd, bool write) {
	epoll_event ev{};
	ev.events = write ? uint32_t{EPOLLOUT} : uint32_t{EPOLLIN};
	if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) ctl(EPOLL_CTL_ADD, fd, &ev);
}

void Loop::unwatch_fd(int fd) { ctl(EPOLL_CTL_DEL, fd, nullptr); }

void Loop::remove(sd_bus *bus) {
	ctl(EPOLL_CTL_DEL, sd_bus_get_fd(bus), nullptr);
	std::erase(buses_, bus);
}

void Loop::wake() {
	epoll_event evs[8];
	(void)::epoll_wait(epoll_.get(), evs, 8, 0);
	uint64_t expirations;
	while (::read(timer_.get(), &expirations, sizeof expirations) > 0) {
	}
}

int Loop::process(sd_bus *bus) {
	for (int i = 0; i < 256; i++) { // bounded: a peer can never keep the event loop busy
		const int r = sd_bus_process(bus, nullptr);
		if (r <= 0) return r;
	}
	return 1;
}

void Loop::refresh() {
	uint64_t earliest = UINT64_MAX;
	for (sd_bus *bus : buses_) {
		const int want = sd_bus_get_events(bus);
		if (want < 0) continue;
		epoll_event ev{};
		ev.events = ((want & POLLIN) ? uint32_t{EPOLLIN} : 0u) | ((want & POLLOUT) ? uint32_t{EPOLLOUT} : 0u);
		ev.data.ptr = bus;
		if (const int fd = sd_bus_get_fd(bus); fd >= 0) ctl(EPOLL_CTL_MOD, fd, &ev);
		uint64_t t = UINT64_MAX;
		if (sd_bus_get_timeout(bus, &t) >= 0) earliest = std::min(earliest, t);
	}
	itimerspec its{};
	if (earliest != UINT64_MAX) {
		// sd-bus gives CLOCK_MONOTONIC microseconds; 0 means "now": 1 ns keeps the timer armed.
		its.it_value.tv_sec = static_cast<time_t>(earliest / 1000000);
		its.it_value.tv_nsec = static_cast<long>(earliest % 1000000) * 1000;
		if (earliest == 0) its.it_value.tv_nsec = 1;
	}
	::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

} // namespace vscanout::vgpu::dbus
