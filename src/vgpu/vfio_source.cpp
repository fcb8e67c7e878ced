#include "vgpu/vfio_source.hpp"

#include <fcntl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/guarded_copy.hpp"
#include "base/log.hpp"
#include "vgpu/edid.hpp"

namespace vscanout::vgpu {
namespace {

// Errors after which the device is gone for good (mdev removed, device reset, fd revoked).
bool device_gone(int e) { return e == ENODEV || e == EIO || e == ENXIO || e == EBADF; }

// Errors worth one more try: mbochs answers ENOMEM once after a mode change.
bool transient(int e) { return e == ENOMEM || e == EAGAIN || e == EBUSY || e == EINTR; }

// Whether the driver gives the same answer for both plane types (it ignores drm_plane_type).
bool ignores_plane_type(VfioDevice &d, uint32_t transport_flag) {
	vfio_device_gfx_plane_info p{}, c{};
	p.argsz = c.argsz = sizeof p;
	p.flags = c.flags = transport_flag;
	p.drm_plane_type = static_cast<uint32_t>(PlaneType::primary);
	c.drm_plane_type = static_cast<uint32_t>(PlaneType::cursor);
	if (d.query_plane(p) != 0 || d.query_plane(c) != 0 || p.size == 0) return false;
	return p.drm_format == c.drm_format && p.width == c.width && p.height == c.height && p.stride == c.stride &&
	       p.region_index == c.region_index;
}

int probe(VfioDevice &d, PlaneType type, uint32_t transport_flag) {
	vfio_device_gfx_plane_info info{};
	info.argsz = sizeof info;
	info.flags = VFIO_GFX_PLANE_TYPE_PROBE | transport_flag;
	info.drm_plane_type = static_cast<uint32_t>(type);
	return d.query_plane(info);
}

} // namespace

Result<std::unique_ptr<VfioSource>> VfioSource::create(std::vector<std::unique_ptr<VfioDevice>> devices, int poll_hz,
                                                       std::vector<VfioHeadOptions> per_head,
                                                       VfioSourceOptions options) {
	std::unique_ptr<VfioSource> s(new VfioSource());
	s->poll_hz_ = poll_hz;
	s->options_ = options;
	if (!per_head.empty() && per_head.size() != devices.size()) return fail("one set of options per VFIO device");
	for (auto &dev : devices) {
		Head h;
		int e = probe(*dev, PlaneType::primary, VFIO_GFX_PLANE_TYPE_DMABUF);
		if (e == ENOTTY) return fail("VFIO device " + dev->name() + " has no display (QUERY_GFX_PLANE: ENOTTY)");
		if (e == 0) {
			h.transport = PlaneTransport::dmabuf;
		} else if (probe(*dev, PlaneType::primary, VFIO_GFX_PLANE_TYPE_REGION) == 0) {
			h.transport = PlaneTransport::region;
		} else {
			return fail("VFIO device " + dev->name() + " offers its display neither as dma-buf nor as region");
		}
		const uint32_t flag =
		    h.transport == PlaneTransport::dmabuf ? VFIO_GFX_PLANE_TYPE_DMABUF : VFIO_GFX_PLANE_TYPE_REGION;
		h.cursor = probe(*dev, PlaneType::cursor, flag) == 0;
		if (h.cursor && h.transport == PlaneTransport::region && ignores_plane_type(*dev, flag)) {
			// mdpy answers a cursor query with its primary plane.
			VLOG_INFO("vfio: %s answers cursor queries with its primary plane: no cursor plane", dev->name().c_str());
			h.cursor = false;
		}
		VLOG_INFO("vfio: head %zu is %s: primary plane as %s, %s cursor plane", s->heads_.size(), dev->name().c_str(),
		          h.transport == PlaneTransport::dmabuf ? "dma-buf" : "region", h.cursor ? "a" : "no");
		if (h.transport == PlaneTransport::region) {
			if (auto n = dev->num_regions())
				h.num_regions = *n;
			else
				VLOG_DEBUG("vfio: %s: %s; region indexes are checked by asking for each region", dev->name().c_str(),
				           n.error().c_str());
		}
		h.device = std::move(dev);
		s->heads_.push_back(std::move(h));
	}
	if (s->heads_.empty()) return fail("no VFIO device given");
	for (uint32_t i = 0; i < s->heads_.size(); i++)
		s->probe_edid(i, per_head.empty() ? VfioHeadOptions{} : per_head[i]);
	return s;
}

void VfioSource::probe_edid(uint32_t head, const VfioHeadOptions &opts) {
	Head &h = heads_[head];
	if (!options_.edid || !opts.edid) {
		VLOG_DEBUG("vfio: head %u: EDID updates turned off", head);
		return;
	}
	const int index = h.device->find_region(VFIO_REGION_TYPE_GFX, VFIO_REGION_SUBTYPE_GFX_EDID);
	if (index < 0) {
		VLOG_DEBUG("vfio: head %u (%s) has no EDID region: its guest keeps the modes it has", head,
		           h.device->name().c_str());
		return;
	}
	vfio_region_gfx_edid regs{};
	if (int e = h.device->region_read(static_cast<uint32_t>(index), 0, &regs, sizeof regs)) {
		VLOG_ERROR("vfio: head %u: cannot read its EDID region: %s; leaving it alone", head, std::strerror(e));
		return;
	}
	if (regs.edid_max_size < 128) {
		VLOG_ERROR("vfio: head %u: its EDID region takes %u bytes, less than one EDID block; leaving it alone", head,
		           regs.edid_max_size);
		return;
	}
	// The blob goes at edid_offset: one on the registers would overwrite them with EDID bytes
	// (found by fuzz/edid_fuzz.cpp; no driver does this, a broken one could).
	if (regs.edid_offset < sizeof regs) {
		VLOG_ERROR("vfio: head %u: its EDID region puts the EDID at offset %u, on its registers; leaving it alone",
		           head, regs.edid_offset);
		return;
	}
	h.edid.region = index;
	h.edid.regs = regs;
	if (regs.max_xres || regs.max_yres)
		VLOG_INFO("vfio: head %u: EDID region %d (up to %u bytes), modes up to %ux%u (0: no limit)", head, index,
		          regs.edid_max_size, regs.max_xres, regs.max_yres);
	else
		VLOG_INFO("vfio: head %u: EDID region %d (up to %u bytes), no mode limit", head, index, regs.edid_max_size);
	if (!edid_timer_) {
		edid_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
		if (!edid_timer_)
			VLOG_ERROR("vfio: timerfd_create failed: %s; EDID updates follow resizes at once", std::strerror(errno));
	}
	if (opts.width && opts.height) write_edid(head, opts.width, opts.height);
}

VfioSource::~VfioSource() {
	// A guest must not be left with its link down.
	for (uint32_t i = 0; i < heads_.size(); i++)
		if (heads_[i].edid.link_up_pending) link_up(i);
}

bool VfioSource::edid_busy() const {
	for (const Head &h : heads_)
		if (h.edid.pending || h.edid.link_up_pending) return true;
	return false;
}

void VfioSource::window_resized(uint32_t head, uint32_t width, uint32_t height) {
	if (head >= heads_.size()) return;
	Head &h = heads_[head];
	if (h.lost || h.edid.region < 0 || !width || !height) return;
	h.edid.want_w = width;
	h.edid.want_h = height;
	if (!edid_timer_) {
		write_edid(head, width, height);
		return;
	}
	h.edid.pending = true;
	h.edid.due = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.edid_settle_ms);
	arm_edid_timer();
}

void VfioSource::arm_edid_timer() {
	if (!edid_timer_) return;
	bool any = false;
	std::chrono::steady_clock::time_point next{};
	for (const Head &h : heads_) {
		if (h.edid.pending && (!any || h.edid.due < next)) next = h.edid.due, any = true;
		if (h.edid.link_up_pending && (!any || h.edid.link_up_due < next)) next = h.edid.link_up_due, any = true;
	}
	itimerspec its{};
	if (any) {
		auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next - std::chrono::steady_clock::now()).count();
		ns = std::max<decltype(ns)>(ns, 1); // 0 would disarm it
		its.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
		its.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
	}
	::timerfd_settime(edid_timer_.get(), 0, &its, nullptr);
}

std::vector<int> VfioSource::watch_fds() const {
	if (edid_timer_) return {edid_timer_.get()};
	return {};
}

void VfioSource::dispatch(int fd) {
	if (!edid_timer_ || fd != edid_timer_.get()) return;
	uint64_t expirations = 0;
	if (::read(fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return;
	const auto now = std::chrono::steady_clock::now();
	for (uint32_t i = 0; i < heads_.size(); i++) {
		Head &h = heads_[i];
		if (h.edid.link_up_pending && h.edid.link_up_due <= now) link_up(i);
		if (!h.edid.pending || h.edid.due > now) continue;
		h.edid.pending = false;
		if (!h.lost) write_edid(i, h.edid.want_w, h.edid.want_h);
	}
	arm_edid_timer();
}

void VfioSource::write_edid(uint32_t head, uint32_t width, uint32_t height) {
	Head &h = heads_[head];
	if (h.lost || h.edid.region < 0) return;
	const vfio_region_gfx_edid &regs = h.edid.regs;
	uint32_t w = width, hh = height;
	if (regs.max_xres) w = std::min(w, regs.max_xres);
	if (regs.max_yres) hh = std::min(hh, regs.max_yres);
	EdidParams params;
	params.width = w;
	params.height = hh;
	params.serial = head + 1;
	params.product = 1;
	const EdidTiming t = preferred_timing(w, hh);
	if (t.hactive == h.edid.shown_w && t.vactive == h.edid.shown_h) return; // the guest has it already
	const std::vector<uint8_t> blob = generate_edid(params);
	if (blob.size() > regs.edid_max_size) {
		VLOG_ERROR("vfio: head %u: a %zu-byte EDID does not fit its region (%u bytes)", head, blob.size(),
		           regs.edid_max_size);
		return;
	}
	// The update protocol of <linux/vfio.h>: link down, blob and size, link up. The link comes
	// up edid_link_down_ms later (on the timer), so that a guest sees it go down and up.
	const auto index = static_cast<uint32_t>(h.edid.region);
	const uint32_t down = VFIO_DEVICE_GFX_LINK_STATE_DOWN;
	const auto size = static_cast<uint32_t>(blob.size());
	int e = h.device->region_write(index, offsetof(vfio_region_gfx_edid, link_state), &down, sizeof down);
	if (!e) h.edid.link_down = true;
	if (!e) e = h.device->region_write(index, regs.edid_offset, blob.data(), blob.size());
	if (!e) e = h.device->region_write(index, offsetof(vfio_region_gfx_edid, edid_size), &size, sizeof size);
	if (e) {
		edid_failed(head, e);
		return;
	}
	if (edid_timer_ && options_.edid_link_down_ms > 0) {
		h.edid.link_up_pending = true;
		h.edid.link_up_due = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.edid_link_down_ms);
		arm_edid_timer();
	} else {
		link_up(head);
		if (h.edid.region < 0) return;
	}
	h.edid.shown_w = t.hactive;
	h.edid.shown_h = t.vactive;
	if (t.hactive != width || t.vactive != height)
		VLOG_INFO("vfio: head %u: EDID offers %ux%u@%.2f Hz (asked %ux%u; the device allows up to %ux%u, an EDID "
		          "%u..%u a side)",
		          head, t.hactive, t.vactive, t.refresh_hz(), width, height, regs.max_xres, regs.max_yres,
		          kEdidMinWidth, kEdidMaxSide);
	else
		VLOG_INFO("vfio: head %u: EDID offers %ux%u@%.2f Hz", head, t.hactive, t.vactive, t.refresh_hz());
}

std::vector<uint32_t> VfioSource::heads() const {
	std::vector<uint32_t> ids;
	for (uint32_t i = 0; i < heads_.size(); i++) ids.push_back(i);
	return ids;
}

uint64_t VfioSource::damage_seq(uint32_t head) const { return head < heads_.size() ? heads_[head].damage : 0; }

Result<PlaneInfo> VfioSource::query(uint32_t head, PlaneType type) {
	if (head >= heads_.size()) return fail("no head " + std::to_string(head));
	Head &h = heads_[head];
	PlaneInfo disabled;
	disabled.head_id = head;
	disabled.type = type;
	if (h.lost) return disabled;
	if (removal_started(h)) {
		lose(head, "its removal started");
		return disabled;
	}
	if (type == PlaneType::cursor && !h.cursor) {
		disabled.state = PlaneState::unsupported;
		return disabled;
	}
	vfio_device_gfx_plane_info info;
	int e = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		// Zeroed before every query: some drivers (i915 GVT) return 0 without filling it.
		std::memset(&info, 0, sizeof info);
		info.argsz = sizeof info;
		info.flags = h.transport == PlaneTransport::dmabuf ? VFIO_GFX_PLANE_TYPE_DMABUF : VFIO_GFX_PLANE_TYPE_REGION;
		info.drm_plane_type = static_cast<uint32_t>(type);
		e = h.device->query_plane(info);
		if (!transient(e)) break;
	}
	if (device_gone(e)) {
		lose(head, std::strerror(e));
		return disabled;
	}
	if (e) return fail(std::string("QUERY_GFX_PLANE failed: ") + std::strerror(e));
	auto plane = convert(head, type, info);
	if (plane && h.transport == PlaneTransport::region) {
		if (plane->enabled())
			refresh_region(head, *plane);
		else
			h.planes[type == PlaneType::cursor ? 1 : 0].drop();
		if (h.lost) return disabled;
	}
	return plane;
}

void VfioSource::refresh_region(uint32_t head, PlaneInfo &plane) {
	Head &h = heads_[head];
	RegionPlane &rp = h.planes[plane.type == PlaneType::cursor ? 1 : 0];
	const RegionPlane::Config config{plane.drm_format, plane.drm_format_mod, plane.width,       plane.height,
	                                 plane.stride,     plane.size,           plane.region_index};
	if (!rp.configured || rp.config != config) {
		// A new configuration: a new id, so the tracker validates and opens it (open_region makes
		// the snapshot). An old import keeps its own memfd and is never refreshed again.
		rp.drop();
		rp.configured = true;
		rp.config = config;
		rp.id = next_region_id_++;
		plane.buffer_id = rp.id;
		return;
	}
	plane.buffer_id = rp.id;
	if (!rp.snapshot) return; // not opened yet (or refused): nothing to refresh
	auto changed = read_region(h, rp);
	if (h.lost) return;
	if (!changed) {
		h.region_failures++;
		if (!rp.failing)
			VLOG_ERROR("vfio: head %u: reading its %s plane from region %u failed: %s; keeping the last frame", head,
			           to_string(plane.type), rp.region_index, changed.error().c_str());
		rp.failing = true;
		return;
	}
	if (rp.failing) VLOG_INFO("vfio: head %u: its %s plane reads again", head, to_string(plane.type));
	rp.failing = false;
	if (!*changed) return;
	if (plane.type == PlaneType::primary) {
		h.damage++; // a damage notice: the import (a mapping of the snapshot) shows it as it is
	} else {
		// Cursors take no damage notices: a new id makes a new image (and a snapshot of its own).
		rp.id = next_region_id_++;
		plane.buffer_id = rp.id;
		rp.snapshot.reset();
		rp.snapshot_view.reset();
		rp.source.reset();
	}
}

Result<bool> VfioSource::read_region(Head &h, RegionPlane &rp) {
	if (rp.use_pread) {
		if (int e = h.device->region_read(rp.region_index, 0, rp.scratch.data(), rp.bytes)) {
			if (device_gone(e) && e != EIO) lose(static_cast<uint32_t>(&h - heads_.data()), std::strerror(e));
			return fail(std::string("pread: ") + std::strerror(e));
		}
		return guarded_copy_changed(rp.snapshot_view.data(), rp.scratch.data(), rp.bytes);
	}
	if (rp.remap || !rp.source) {
		// A mapping that faulted stays revoked: after a device reset a new one may work.
		rp.source.reset();
		auto m = h.device->map_region(rp.region_index, align_up(rp.bytes, static_cast<uint64_t>(::getpagesize())));
		if (!m) return m.take_error();
		rp.source = std::move(*m);
		rp.remap = false;
	}
	auto changed = guarded_copy_changed(rp.snapshot_view.data(), rp.source.data(), rp.bytes);
	if (!changed) rp.remap = true;
	return changed;
}

Result<GuestBuffer> VfioSource::open_region(uint32_t head, const PlaneInfo &plane) {
	Head &h = heads_[head];
	RegionPlane &rp = h.planes[plane.type == PlaneType::cursor ? 1 : 0];
	if (!rp.configured || plane.buffer_id != rp.id)
		return fail("the plane changed since it was queried (buffer id " + std::to_string(plane.buffer_id) + ")");
	const uint32_t index = plane.region_index;
	auto region = h.device->region_info(index);
	if (h.num_regions && index >= *h.num_regions) {
		// Past num_regions. mdpy does this (its display is region 16 of 9): the index counts only
		// if the device itself describes that region (docs/design.md, "VFIO quirks").
		if (!region)
			return fail("region_index " + std::to_string(index) + " is not a region of the device (it has " +
			            std::to_string(*h.num_regions) + "): " + region.error());
		if (!h.quiet_region_past_count)
			VLOG_INFO("vfio: head %u: the plane's region_index %u is past the device's num_regions (%u), but the "
			          "device describes that region: using it",
			          head, index, *h.num_regions);
		h.quiet_region_past_count = true;
	}
	if (!region) return fail("region_index " + std::to_string(index) + ": " + region.error());
	// The plane starts at byte 0 of its region; every byte it names must be inside.
	if (uint64_t{plane.size} > region->size)
		return fail("the plane (" + std::to_string(plane.size) + " bytes) is larger than region " +
		            std::to_string(index) + " (" + std::to_string(region->size) + " bytes)");
	const size_t bytes = std::min<uint64_t>(uint64_t{plane.stride} * plane.height, plane.size);
	if (!bytes) return fail("the plane has no bytes");
	RegionPlane fresh;
	fresh.configured = true;
	fresh.config = rp.config;
	fresh.id = rp.id;
	fresh.region_index = index;
	fresh.bytes = bytes;
	if (region->mappable) {
		auto m = h.device->map_region(index, align_up(bytes, static_cast<uint64_t>(::getpagesize())));
		if (m) {
			fresh.source = std::move(*m);
		} else if (region->readable) {
			VLOG_DEBUG("vfio: head %u: %s; reading region %u instead", head, m.error().c_str(), index);
			fresh.use_pread = true;
		} else {
			return fail(m.error());
		}
	} else if (region->readable) {
		fresh.use_pread = true;
	} else {
		return fail("region " + std::to_string(index) + " can be neither mapped nor read");
	}
	if (fresh.use_pread) fresh.scratch.resize(bytes);
	auto memfd = make_memfd("vscanout-region", plane.size);
	if (!memfd) return memfd.take_error();
	auto view = Mapping::map(memfd->get(), plane.size, PROT_READ | PROT_WRITE);
	if (!view) return view.take_error();
	fresh.snapshot = std::move(*memfd);
	fresh.snapshot_view = std::move(*view);
	if (auto first = read_region(h, fresh); !first) {
		if (h.lost) return fail("the device is gone");
		return fail("reading region " + std::to_string(index) + " failed: " + first.error());
	}
	const int dup = ::fcntl(fresh.snapshot.get(), F_DUPFD_CLOEXEC, 0);
	if (dup < 0) return fail(std::string("dup failed: ") + std::strerror(errno));
	rp = std::move(fresh);
	GuestBuffer b;
	b.fd = UniqueFd(dup);
	b.kind = BufferKind::memfd;
	b.byte_size = plane.size;
	return b;
}

bool VfioSource::removal_started(const Head &h) const {
	// Removing an mdev (or unplugging a PCI device) takes its "remove" attribute away first, then
	// waits until every fd of the device is closed: the kernel tells users no other way.
	const std::string &path = h.device->sysfs_path();
	return !path.empty() && ::access((path + "/remove").c_str(), F_OK) != 0;
}

void VfioSource::lose(uint32_t head, const char *why) {
	Head &h = heads_[head];
	VLOG_ERROR("vfio: head %u (%s) went away (%s); showing no signal", head, h.device->name().c_str(), why);
	h.lost = true;
	// Closing our fds (and mappings) lets the kernel finish removing the device.
	for (RegionPlane &rp : h.planes) rp.drop();
	h.device.reset();
}

void VfioSource::link_up(uint32_t head) {
	Head &h = heads_[head];
	h.edid.link_up_pending = false;
	if (h.lost || h.edid.region < 0) return;
	const uint32_t up = VFIO_DEVICE_GFX_LINK_STATE_UP;
	if (int e = h.device->region_write(static_cast<uint32_t>(h.edid.region), offsetof(vfio_region_gfx_edid, link_state),
	                                   &up, sizeof up))
		edid_failed(head, e);
	else
		h.edid.link_down = false;
}

void VfioSource::edid_failed(uint32_t head, int error) {
	Head &h = heads_[head];
	VLOG_ERROR("vfio: head %u: writing its EDID failed (%s); no more EDID updates for it", head, std::strerror(error));
	// A write that failed after the link went down (this one, or the last one's link-up still to
	// come) must not leave the guest without a monitor: one try to bring it back up, with whatever
	// EDID the device holds, unless the device is gone (found by fuzz/edid_fuzz.cpp).
	if (h.edid.link_down && !device_gone(error)) {
		const uint32_t up = VFIO_DEVICE_GFX_LINK_STATE_UP;
		if (h.device->region_write(static_cast<uint32_t>(h.edid.region), offsetof(vfio_region_gfx_edid, link_state),
		                           &up, sizeof up) == 0)
			h.edid.link_down = false;
	}
	h.edid.region = -1;
	h.edid.pending = false;
	h.edid.link_up_pending = false;
	if (device_gone(error)) lose(head, std::strerror(error));
}

Result<PlaneInfo> VfioSource::convert(uint32_t head, PlaneType type, const vfio_device_gfx_plane_info &info) const {
	PlaneInfo p;
	p.head_id = head;
	p.type = type;
	// A disabled plane is a success with zero format, size and dimensions.
	if (info.drm_format == 0 || info.size == 0 || info.width == 0 || info.height == 0) {
		p.state = PlaneState::disabled;
		return p;
	}
	p.state = PlaneState::enabled;
	p.drm_format = info.drm_format;
	p.drm_format_mod = info.drm_format_mod;
	p.width = info.width;
	p.height = info.height;
	p.stride = info.stride;
	p.size = info.size;
	// __u32 in the kernel, but a cursor hanging off the top/left edge is negative.
	p.x_pos = static_cast<int32_t>(info.x_pos);
	p.y_pos = static_cast<int32_t>(info.y_pos);
	p.x_hot = info.x_hot;
	p.y_hot = info.y_hot;
	p.offset = 0;
	if (heads_[head].transport == PlaneTransport::dmabuf) {
		p.buffer_id = info.dmabuf_id;
	} else {
		// Region planes carry the region index in the same union; no id (buffer_id 0).
		p.buffer_id = 0;
		p.region_index = info.region_index;
	}
	return p;
}

Result<GuestBuffer> VfioSource::open_buffer(const PlaneInfo &plane) {
	if (plane.head_id >= heads_.size()) return fail("no head " + std::to_string(plane.head_id));
	Head &h = heads_[plane.head_id];
	if (h.lost) return fail("the device is gone");
	GuestBuffer b;
	if (h.transport == PlaneTransport::dmabuf) {
		auto fd = h.device->get_dmabuf(static_cast<uint32_t>(plane.buffer_id));
		if (!fd) return fd.take_error();
		auto size = fd_byte_size(fd->get());
		if (!size) return size.take_error();
		b.fd = std::move(*fd);
		b.kind = BufferKind::dmabuf;
		b.byte_size = *size;
		return b;
	}
	return open_region(plane.head_id, plane);
}

namespace {

bool parse_size(const std::string &v, uint32_t &w, uint32_t &h) {
	char *end = nullptr;
	unsigned long a = std::strtoul(v.c_str(), &end, 10);
	if (end == v.c_str() || (*end != 'x' && *end != 'X')) return false;
	const char *second = end + 1;
	unsigned long b = std::strtoul(second, &end, 10);
	if (end == second || *end || a == 0 || b == 0 || a > 65535 || b > 65535) return false;
	if (!std::isdigit(static_cast<unsigned char>(v[0])) || !std::isdigit(static_cast<unsigned char>(*second)))
		return false;
	w = static_cast<uint32_t>(a);
	h = static_cast<uint32_t>(b);
	return true;
}

} // namespace

Result<VfioSpec> parse_vfio_spec(const std::string &spec) {
	VfioSpec out;
	const size_t comma = spec.find(',');
	const std::string head = spec.substr(0, comma);
	if (head.rfind("vfio-fd:", 0) == 0) {
		char *end = nullptr;
		long fd = std::strtol(head.c_str() + 8, &end, 10);
		if (head.size() == 8 || end == head.c_str() + 8 || (*end && *end != ':') || fd < 0 || fd > 65535)
			return fail(spec + ": expected vfio-fd:<fd number>[:<device>]");
		out.by_fd = true;
		out.fd = static_cast<int>(fd);
		if (*end == ':') out.device = end + 1;
	} else if (head.rfind("vfio:", 0) == 0) {
		out.device = head.substr(5);
	} else {
		return fail(spec + ": cannot mix this source with vfio sources");
	}
	size_t pos = comma;
	while (pos != std::string::npos) {
		const size_t next = spec.find(',', pos + 1);
		const std::string kv = spec.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
		pos = next;
		const size_t eq = kv.find('=');
		const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
		if (key == "size") {
			if (!parse_size(value, out.options.width, out.options.height))
				return fail(spec + ": size takes WIDTHxHEIGHT (e.g. size=1920x1080), not '" + value + "'");
		} else if (key == "edid") {
			if (value == "off" || value == "no" || value == "0")
				out.options.edid = false;
			else if (value == "on" || value == "yes" || value == "1")
				out.options.edid = true;
			else
				return fail(spec + ": edid takes on or off, not '" + value + "'");
		} else {
			return fail(spec + ": unknown option '" + key + "' (a vfio source takes size=WxH and edid=on|off)");
		}
	}
	return out;
}

Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<VfioSpec> &specs, int poll_hz,
                                                     VfioSourceOptions options) {
	std::vector<std::unique_ptr<VfioDevice>> devices;
	std::vector<VfioHeadOptions> per_head;
	for (const VfioSpec &one : specs) {
		const VfioSpec *spec = &one;
		const std::string text = spec->by_fd ? "vfio-fd:" + std::to_string(spec->fd) : "vfio:" + spec->device;
		if (spec->by_fd) {
			auto d = KernelVfioDevice::adopt(spec->fd, spec->device);
			if (!d) return fail(text + ": " + d.error());
			devices.push_back(std::move(*d));
		} else {
			auto d = KernelVfioDevice::open(spec->device);
			if (!d) return fail(text + ": " + d.error());
			devices.push_back(std::move(*d));
		}
		per_head.push_back(spec->options);
	}
	return VfioSource::create(std::move(devices), poll_hz, std::move(per_head), options);
}

Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<std::string> &specs, int poll_hz,
                                                     VfioSourceOptions options) {
	std::vector<VfioSpec> parsed;
	for (const std::string &text : specs) {
		auto spec = parse_vfio_spec(text);
		if (!spec) return spec.take_error();
		parsed.push_back(std::move(*spec));
	}
	return open_vfio_source(parsed, poll_hz, options);
}

} // namespace vscanout::vgpu
