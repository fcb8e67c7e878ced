#include "vgpu/vfio_source.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "base/fd_util.hpp"
#include "base/log.hpp"

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

Result<std::unique_ptr<VfioSource>> VfioSource::create(std::vector<std::unique_ptr<VfioDevice>> devices,
                                                       int poll_hz) {
	std::unique_ptr<VfioSource> s(new VfioSource());
	s->poll_hz_ = poll_hz;
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
		h.device = std::move(dev);
		s->heads_.push_back(std::move(h));
	}
	if (s->heads_.empty()) return fail("no VFIO device given");
	return s;
}

std::vector<uint32_t> VfioSource::heads() const {
	std::vector<uint32_t> ids;
	for (uint32_t i = 0; i < heads_.size(); i++) ids.push_back(i);
	return ids;
}

bool VfioSource::needs_content_watch(uint32_t head) const {
	// A region plane has no id: the guest draws in place.
	return head < heads_.size() && heads_[head].transport == PlaneTransport::region;
}

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
	return convert(head, type, info);
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
	// Closing our fds lets the kernel finish removing the device.
	h.device.reset();
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
	auto region = h.device->region_info(plane.region_index);
	if (!region) return region.take_error();
	if (!region->mappable) return fail("region " + std::to_string(plane.region_index) + " cannot be mmap()ed");
	auto fd = h.device->dup_fd();
	if (!fd) return fd.take_error();
	b.fd = std::move(*fd);
	b.kind = BufferKind::region;
	b.map_offset = region->offset;
	b.byte_size = region->size;
	return b;
}

Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<std::string> &specs, int poll_hz) {
	std::vector<std::unique_ptr<VfioDevice>> devices;
	for (const std::string &spec : specs) {
		if (spec.rfind("vfio-fd:", 0) == 0) {
			char *end = nullptr;
			long fd = std::strtol(spec.c_str() + 8, &end, 10);
			if (spec.size() == 8 || (*end && *end != ':') || fd < 0 || fd > 65535)
				return fail(spec + ": expected vfio-fd:<fd number>[:<device>]");
			auto d = KernelVfioDevice::adopt(static_cast<int>(fd), *end == ':' ? std::string(end + 1) : "");
			if (!d) return fail(spec + ": " + d.error());
			devices.push_back(std::move(*d));
		} else if (spec.rfind("vfio:", 0) == 0) {
			auto d = KernelVfioDevice::open(spec.substr(5));
			if (!d) return fail(spec + ": " + d.error());
			devices.push_back(std::move(*d));
		} else {
			return fail(spec + ": cannot mix this source with vfio sources");
		}
	}
	return VfioSource::create(std::move(devices), poll_hz);
}

} // namespace vscanout::vgpu
