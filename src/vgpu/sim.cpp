// SimSource: the simulated vGPU. Heads with page-flip rings of memfd, udmabuf or vgem buffers, a
// cursor, timed flips and a scenario script, answering query()/open_buffer() like VFIO does.
#include "vgpu/sim.hpp"

#include <drm_fourcc.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "base/mapping.hpp"
#include "vgpu/sim_buffers.hpp"

namespace vscanout::vgpu {
namespace {

constexpr uint32_t kCursorStride = kCursorSize * 4;

// Consumers cache imports by buffer id: an id must never name two buffers in one process, not
// even across two SimSources (tests create many), so ids come from one process-wide counter.
std::atomic<uint64_t> g_next_buffer_id{1};

uint32_t primary_stride(Mode m) { return static_cast<uint32_t>(align_up(uint64_t(m.width) * 4, 256)); }

uint64_t now_ms() {
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

std::string errno_text() { return std::strerror(errno); }

// `mirror` is the source's own next_buffer_id_, kept in step for debugging.
uint64_t take_buffer_id(uint64_t &mirror) {
	uint64_t id = g_next_buffer_id.fetch_add(1);
	mirror = id + 1;
	return id;
}

Result<SimBuffer> make_buffer(uint64_t bytes, const SimAllocator &alloc, uint64_t &next_id, const char *name) {
	auto b = alloc.make(bytes, name);
	if (!b) return b.take_error();
	b->id = take_buffer_id(next_id);
	return b;
}

Result<std::vector<SimBuffer>> make_ring(Mode mode, uint32_t count, const SimAllocator &alloc, uint64_t &next_id) {
	std::vector<SimBuffer> ring;
	for (uint32_t i = 0; i < count; i++) {
		auto b = make_buffer(uint64_t(primary_stride(mode)) * mode.height, alloc, next_id, "vscanout-sim-primary");
		if (!b) return b.take_error();
		ring.push_back(std::move(*b));
	}
	return ring;
}

bool is_cursor_fault(Fault f) { return f == Fault::cursor_too_large || f == Fault::hotspot; }

timespec ns_to_timespec(uint64_t ns) {
	return {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

// Reads a timerfd's expiration count; 0 where it had not expired (a spurious dispatch).
uint64_t read_expirations(int fd) {
	uint64_t k = 0;
	if (::read(fd, &k, sizeof k) != static_cast<ssize_t>(sizeof k)) return 0;
	return k;
}

UniqueFd make_timer() { return UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)); }

std::string modes_text(const std::vector<Mode> &modes) {
	std::string s;
	for (const Mode &m : modes) s += (s.empty() ? "" : "/") + std::to_string(m.width) + "x" + std::to_string(m.height);
	return s;
}

} // namespace

struct SimSource::Head {
	uint32_t id = 0;
	Mode mode;
	uint32_t stride = 0;
	bool enabled = true;
	bool cursor_on = true;
	uint64_t frame = 0;
	uint64_t flips = 0;
	uint64_t damage = 0;
	// The ring slot on screen. It follows flips only: a `draw` changes the frame counter but
	// keeps the buffer, so the slot cannot be derived from the frame number.
	size_t shown = 0;
	std::vector<SimBuffer> ring;
	SimBuffer cursor;
	std::vector<uint32_t> fences; // vgem write fences attached and not yet signalled
	Fault fault = Fault::none;
	uint64_t fault_id = 0; // the "bad generation" id the faulted plane reports

	void draw_front() { draw_primary(ring[shown].map.data(), stride, mode.width, mode.height, id, frame); }
};

namespace {

Result<std::unique_ptr<SimSource::Head>> make_head(uint32_t id, Mode mode, const SimOptions &o,
                                                   const SimAllocator &alloc, uint64_t &next_id) {
	auto h = std::make_unique<SimSource::Head>();
	h->id = id;
	h->mode = mode;
	h->stride = primary_stride(mode);
	h->cursor_on = o.cursor;
	auto ring = make_ring(mode, o.buffers, alloc, next_id);
	if (!ring) return ring.take_error();
	h->ring = std::move(*ring);
	auto cursor = make_buffer(uint64_t(kCursorStride) * kCursorSize, alloc, next_id, "vscanout-sim-cursor");
	if (!cursor) return cursor.take_error();
	h->cursor = std::move(*cursor);
	draw_cursor(h->cursor.map.data(), kCursorStride);
	h->draw_front();
	return h;
}

using HeadMap = std::map<uint32_t, std::unique_ptr<SimSource::Head>>;

// The flip timer runs only while some enabled head still has flips to do, so a finished
// `flips=N` run (or an all-disabled guest) leaves the event loop idle. Re-arming restarts the
// period, hence only on a change of state or, with `reset`, of rate.
void sync_flip_timer(const UniqueFd &timer, const HeadMap &heads, const SimOptions &o, bool reset) {
	if (!timer) return;
	bool want = false;
	for (const auto &[id, h] : heads) want |= o.fps > 0 && h->enabled && (o.flips == 0 || h->flips < o.flips);
	itimerspec now{};
	::timerfd_gettime(timer.get(), &now);
	const bool armed = now.it_value.tv_sec != 0 || now.it_value.tv_nsec != 0;
	if (want == armed && !(want && reset)) return;
	itimerspec its{};
	if (want) its.it_value = its.it_interval = ns_to_timespec(std::max<uint64_t>(std::llround(1e9 / o.fps), 1));
	::timerfd_settime(timer.get(), 0, &its, nullptr);
}

} // namespace

SimSource::SimSource(SimOptions options) : options_(std::move(options)) {}
SimSource::~SimSource() = default;

std::string SimSource::allocator_kind() const { return allocator_ ? allocator_->name() : "memfd"; }

Result<std::unique_ptr<SimSource>> SimSource::create(SimOptions options) {
	if (options.modes.empty()) return fail("sim: no modes given (modes=WxH/WxH/...)");
	for (const Mode &m : options.modes)
		if (m.width == 0 || m.height == 0 || m.width > 16384 || m.height > 16384)
			return fail("sim: mode " + modes_text({m}) + " is out of range (1..16384 per side)");
	if (options.buffers < 1 || options.buffers > 8) return fail("sim: buffers must be 1..8");
	if (options.heads > 16) return fail("sim: at most 16 heads");
	if (!(options.fps >= 0 && options.fps <= 2000)) return fail("sim: fps must be 0..2000");

	std::unique_ptr<SimSource> self(new SimSource(std::move(options)));
	const SimOptions &o = self->options_;

	auto alloc = SimAllocator::open(o.dmabuf);
	if (!alloc) return alloc.take_error();
	self->allocator_ = std::move(*alloc);
	for (uint32_t i = 0; i < o.heads; i++) {
		auto head = make_head(i, o.modes[i % o.modes.size()], o, *self->allocator_, self->next_buffer_id_);
		if (!head) return head.take_error();
		self->heads_[i] = std::move(*head);
	}

	// Created up front (not when an event first needs them) so watch_fds() is final once
	// create() returns: the event loop registers the descriptors once.
	bool any_fps = o.fps > 0;
	bool timed_events = false;
	for (const ScriptEvent &ev : o.script) {
		any_fps |= ev.kind == ScriptEvent::Kind::fps && ev.fps > 0;
		timed_events |= ev.at_ms > 0;
	}
	any_fps |= !o.control.empty(); // the control channel may set a rate later
	if (any_fps) self->flip_timer_ = make_timer();
	if (timed_events) self->script_timer_ = make_timer();
	if ((any_fps && !self->flip_timer_) || (timed_events && !self->script_timer_))
		return fail("sim: timerfd_create failed: " + errno_text());

	if (!o.control.empty()) {
		if (::mkfifo(o.control.c_str(), 0600) != 0 && errno != EEXIST)
			return fail("sim: control=" + o.control + ": cannot make the FIFO: " + errno_text());
		// Read-write: the FIFO never reports end-of-file when a writer closes it.
		self->control_ = UniqueFd(::open(o.control.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
		if (!self->control_) return fail("sim: control=" + o.control + ": " + errno_text());
		struct stat st {};
		if (::fstat(self->control_.get(), &st) != 0 || !S_ISFIFO(st.st_mode))
			return fail("sim: control=" + o.control + " is not a FIFO");
	}

	self->start();
	std::string stop = o.flips ? ", stop after " + std::to_string(o.flips) + " flips" : "";
	std::string script = o.script.empty() ? "" : ", script of " + std::to_string(o.script.size()) + " events";
	VLOG_INFO("sim: %u heads, %s, %g fps, %u buffers, cursor %s, %s buffers%s%s", o.heads, modes_text(o.modes).c_str(),
	          o.fps, o.buffers, o.cursor ? "on" : "off", self->allocator_->name(), stop.c_str(), script.c_str());
	return self;
}

void SimSource::start() {
	start_ms_ = now_ms();
	// Time-0 events describe the state the guest boots into: apply them before anyone queries.
	while (next_script_ < options_.script.size() && options_.script[next_script_].at_ms == 0)
		apply(options_.script[next_script_++]);
	sync_flip_timer(flip_timer_, heads_, options_, true);
	arm_script_timer();
}

void SimSource::arm_script_timer() {
	if (!script_timer_) return;
	itimerspec its{};
	if (next_script_ < options_.script.size()) {
		its.it_value = ns_to_timespec((start_ms_ + options_.script[next_script_].at_ms) * 1000000);
	}
	::timerfd_settime(script_timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void SimSource::flip(Head &head, uint64_t count) {
	if (!head.enabled || count == 0) return;
	head.frame += count;
	head.flips += count;
	head.shown = (head.shown + count) % head.ring.size();
	// Only the frame that ends up on screen is drawn: at high rates the skipped ones would cost
	// whole-buffer writes nobody sees.
	head.draw_front();
}

void SimSource::apply(const ScriptEvent &ev) {
	using K = ScriptEvent::Kind;
	const unsigned long long at = ev.at_ms;
	const SimAllocator &alloc = *allocator_;
	std::vector<uint32_t> targets, changed, added, removed;
	if (ev.head)
		targets.push_back(*ev.head);
	else
		for (const auto &[id, h] : heads_) targets.push_back(id);

	if (ev.kind == K::quit) {
		if (!end_reason_.empty()) return; // ended already
		end_reason_ = ev.at_ms ? "the sim script's quit command at " + std::to_string(ev.at_ms) + " ms"
		                       : "the sim's quit command";
		VLOG_INFO("sim: %s: the source ends", end_reason_.c_str());
		if (events_.ended) events_.ended();
		return;
	}
	if (ev.kind == K::lose_device) {
		VLOG_INFO("sim: injecting a device loss: the next submit reports VK_ERROR_DEVICE_LOST");
		if (events_.inject) events_.inject("lose-device");
		return;
	}
	if (ev.kind == K::fps) {
		options_.fps = ev.fps;
		targets.clear();
	} else if (ev.kind == K::plug) {
		const uint32_t id = ev.head.value_or(0);
		targets.clear();
		Result<std::unique_ptr<Head>> head = fail("it is already present");
		if (!heads_.count(id)) head = make_head(id, ev.mode, options_, alloc, next_buffer_id_);
		if (head) {
			heads_[id] = std::move(*head);
			added.push_back(id);
			VLOG_INFO("sim: head %u plugged, %ux%u", id, ev.mode.width, ev.mode.height);
		} else {
			VLOG_ERROR("sim script: %llu ms: cannot plug head %u: %s", at, id, head.error().c_str());
		}
	}
	for (uint32_t id : targets) {
		auto it = heads_.find(id);
		if (it == heads_.end()) {
			VLOG_ERROR("sim script: %llu ms: there is no head %u", at, id);
			continue;
		}
		Head &h = *it->second;
		switch (ev.kind) {
		case K::unplug:
			heads_.erase(it);
			removed.push_back(id);
			VLOG_INFO("sim: head %u unplugged", id);
			continue; // gone: no head_changed
		case K::disable: h.enabled = false; break;
		case K::enable: h.enabled = true; break;
		case K::mode: {
			auto ring = make_ring(ev.mode, options_.buffers, alloc, next_buffer_id_);
			if (!ring) {
				VLOG_ERROR("sim script: %llu ms: mode %ux%u on head %u: %s", at, ev.mode.width, ev.mode.height, id,
				           ring.error().c_str());
				continue;
			}
			// The old buffers go now; consumers holding them keep their own dup'ed fds.
			h.ring = std::move(*ring);
			h.mode = ev.mode;
			h.stride = primary_stride(ev.mode);
			h.shown %= h.ring.size();
			h.draw_front();
			VLOG_INFO("sim: head %u mode %ux%u", id, ev.mode.width, ev.mode.height);
			break;
		}
		case K::cursor_on: h.cursor_on = true; break;
		case K::cursor_off: h.cursor_on = false; break;
		case K::draw:
			if (!h.enabled) continue; // a guest with its display off draws nothing we could see
			h.frame++;
			h.damage++;
			h.draw_front();
			break;
		case K::flip:
			if (!h.enabled) continue;
			flip(h, 1);
			break;
		case K::fault:
			h.fault = ev.fault;
			if (ev.fault != Fault::none) h.fault_id = take_buffer_id(next_buffer_id_);
			VLOG_INFO("sim: head %u fault %s", id, to_string(ev.fault));
			break;
		case K::fence: {
			// On the buffer the next flip shows: the guest's GPU is still drawing it.
			const SimBuffer &next = h.ring[(h.shown + 1) % h.ring.size()];
			auto fence = alloc.attach_write_fence(next);
			if (!fence) {
				VLOG_ERROR("sim script: %llu ms: fence on head %u: %s", at, id, fence.error().c_str());
				continue;
			}
			h.fences.push_back(*fence);
			VLOG_INFO("sim: head %u: write fence %u on buffer id %llu", id, *fence,
			          static_cast<unsigned long long>(next.id));
			continue; // nothing a consumer sees changed yet
		}
		case K::signal:
			for (uint32_t f : h.fences)
				if (Status st = alloc.signal_fence(f); !st)
					VLOG_ERROR("sim: head %u: fence %u: %s", id, f, st.error().c_str());
			VLOG_INFO("sim: head %u: %zu write fences signalled", id, h.fences.size());
			h.fences.clear();
			continue;
		case K::plug:
		case K::fps:
		case K::quit:
		case K::lose_device: break; // no per-head part
		}
		changed.push_back(id);
	}
	sync_flip_timer(flip_timer_, heads_, options_, ev.kind == K::fps);
	// Callbacks last: they may query, and should see the event applied in full.
	for (uint32_t id : added)
		if (events_.head_added) events_.head_added(id);
	for (uint32_t id : removed)
		if (events_.head_removed) events_.head_removed(id);
	for (uint32_t id : changed)
		if (events_.head_changed) events_.head_changed(id);
}

std::vector<uint32_t> SimSource::heads() const {
	std::vector<uint32_t> ids;
	for (const auto &[id, h] : heads_) ids.push_back(id);
	return ids;
}

Result<PlaneInfo> SimSource::query(uint32_t head, PlaneType type) {
	auto it = heads_.find(head);
	if (it == heads_.end()) return fail("sim: there is no head " + std::to_string(head));
	const Head &h = *it->second;

	PlaneInfo p;
	p.head_id = head;
	p.type = type;
	// A disabled plane reads like a zeroed VFIO struct: no hotspot sentinel either.
	p.x_hot = p.y_hot = 0;
	if (!h.enabled || (type == PlaneType::cursor && !h.cursor_on)) return p;

	p.state = PlaneState::enabled;
	p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	const bool faulted = h.fault != Fault::none && is_cursor_fault(h.fault) == (type == PlaneType::cursor);
	if (type == PlaneType::primary) {
		const SimBuffer &b = h.ring[h.shown];
		p.drm_format = DRM_FORMAT_XRGB8888;
		p.width = h.mode.width;
		p.height = h.mode.height;
		p.stride = h.stride;
		p.size = static_cast<uint32_t>(b.size);
		p.buffer_id = b.id;
		p.x_hot = p.y_hot = kNoHotspot;
	} else {
		const Point hot = cursor_hotspot_at(h.frame, h.mode);
		p.drm_format = DRM_FORMAT_ARGB8888;
		p.width = p.height = kCursorSize;
		p.stride = kCursorStride;
		p.size = static_cast<uint32_t>(h.cursor.size);
		p.buffer_id = h.cursor.id;
		p.x_hot = kCursorHotX;
		p.y_hot = kCursorHotY;
		p.x_pos = hot.x - static_cast<int32_t>(kCursorHotX);
		p.y_pos = hot.y - static_cast<int32_t>(kCursorHotY);
	}
	if (!faulted) return p;

	p.buffer_id = h.fault_id;
	const uint32_t plane_bytes = p.stride * p.height;
	switch (h.fault) {
	case Fault::none: break;
	case Fault::fourcc_unknown: p.drm_format = fourcc_code('Z', 'Z', 'Z', '9'); break;
	case Fault::fourcc_unsupported: p.drm_format = DRM_FORMAT_NV12; break;
	case Fault::width_zero: p.width = 0; break;
	case Fault::height_zero: p.height = 0; break;
	case Fault::too_large: p.width = 16385; break;
	case Fault::stride: p.stride = p.width * 4 - 4; break;
	// Tiny modes have fewer than 4096 bytes to take away: one byte short fails the same check.
	case Fault::size: p.size = plane_bytes > 4096 ? plane_bytes - 4096 : plane_bytes - 1; break;
	case Fault::offset: p.offset = p.size; break;
	case Fault::cursor_too_large:
		p.width = p.height = 1024;
		p.stride = 4096;
		p.size = 4u << 20;
		break;
	case Fault::hotspot: p.x_hot = p.y_hot = 1000; break;
	}
	return p;
}

Result<GuestBuffer> SimSource::open_buffer(const PlaneInfo &plane) {
	auto it = heads_.find(plane.head_id);
	if (it == heads_.end()) return fail("sim: there is no head " + std::to_string(plane.head_id));
	const Head &h = *it->second;

	const SimBuffer *buf = nullptr;
	if (h.fault != Fault::none && plane.buffer_id == h.fault_id) {
		buf = is_cursor_fault(h.fault) ? &h.cursor : &h.ring[h.shown];
	} else if (plane.buffer_id == h.cursor.id) {
		buf = &h.cursor;
	} else {
		for (const SimBuffer &b : h.ring)
			if (b.id == plane.buffer_id) buf = &b;
	}
	if (!buf)
		return fail("unknown buffer id " + std::to_string(plane.buffer_id) + " for head " +
		            std::to_string(plane.head_id));

	UniqueFd fd(::fcntl(buf->export_fd(), F_DUPFD_CLOEXEC, 0));
	if (!fd) return fail("sim: cannot duplicate buffer " + std::to_string(buf->id) + ": " + errno_text());
	GuestBuffer g;
	g.fd = std::move(fd);
	g.kind = buf->kind();
	g.byte_size = buf->size;
	buffers_opened_++;
	return g;
}

uint64_t SimSource::damage_seq(uint32_t head) const {
	auto it = heads_.find(head);
	return it == heads_.end() ? 0 : it->second->damage;
}

uint64_t SimSource::flips_done(uint32_t head) const {
	auto it = heads_.find(head);
	return it == heads_.end() ? 0 : it->second->flips;
}

std::vector<int> SimSource::watch_fds() const {
	std::vector<int> fds;
	if (flip_timer_) fds.push_back(flip_timer_.get());
	if (script_timer_) fds.push_back(script_timer_.get());
	if (control_) fds.push_back(control_.get());
	return fds;
}

void SimSource::dispatch(int fd) {
	if (flip_timer_ && fd == flip_timer_.get()) {
		const uint64_t k = read_expirations(fd);
		if (k == 0) return;
		std::vector<uint32_t> changed;
		for (auto &[id, h] : heads_) {
			if (!h->enabled) continue;
			uint64_t n = k;
			if (options_.flips) {
				if (h->flips >= options_.flips) continue;
				n = std::min(k, options_.flips - h->flips); // never overshoot the requested count
			}
			flip(*h, n);
			changed.push_back(id);
		}
		sync_flip_timer(flip_timer_, heads_, options_, false);
		if (events_.head_changed)
			for (uint32_t id : changed) events_.head_changed(id);
	} else if (control_ && fd == control_.get()) {
		read_control();
	} else if (script_timer_ && fd == script_timer_.get()) {
		read_expirations(fd);
		const uint64_t elapsed = now_ms() - start_ms_;
		while (next_script_ < options_.script.size() && options_.script[next_script_].at_ms <= elapsed)
			apply(options_.script[next_script_++]);
		arm_script_timer();
	}
}

void SimSource::read_control() {
	char buf[4096];
	for (;;) {
		const ssize_t n = ::read(control_.get(), buf, sizeof buf);
		if (n <= 0) break; // EAGAIN: all read
		control_pending_.append(buf, static_cast<size_t>(n));
	}
	size_t nl;
	while ((nl = control_pending_.find('\n')) != std::string::npos) {
		const std::string line = control_pending_.substr(0, nl);
		control_pending_.erase(0, nl + 1);
		auto ev = parse_command(line);
		if (!ev)
			VLOG_ERROR("sim control: '%s': %s", line.c_str(), ev.error().c_str());
		else if (*ev)
			apply(**ev);
	}
	if (control_pending_.size() > 4096) {
		VLOG_ERROR("sim control: a line longer than 4096 bytes; dropped");
		control_pending_.clear();
	}
}

} // namespace vscanout::vgpu
