#include "vgpu/sim_buffers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xf86drm.h>

#include <cerrno>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"

// vgem's fence ioctls (include/uapi/drm/vgem_drm.h; Debian's libdrm does not ship the header).
namespace {
struct vgem_fence_attach {
	__u32 handle;
	__u32 flags;
	__u32 out_fence;
	__u32 pad;
};
struct vgem_fence_signal {
	__u32 fence;
	__u32 flags;
};
constexpr __u32 kVgemFenceWrite = 0x1;
constexpr unsigned long kVgemFenceAttach = DRM_IOWR(DRM_COMMAND_BASE + 0x1, vgem_fence_attach);
constexpr unsigned long kVgemFenceSignal = DRM_IOW(DRM_COMMAND_BASE + 0x2, vgem_fence_signal);
} // namespace

namespace vscanout::vgpu {
namespace {

constexpr const char *kUdmabufPath = "/dev/udmabuf";

std::string errno_text() { return std::strerror(errno); }

uint64_t page_size() {
	static const long ps = ::sysconf(_SC_PAGESIZE);
	return ps > 0 ? static_cast<uint64_t>(ps) : 4096;
}

int drm_ioctl(int fd, unsigned long req, void *arg) {
	int r;
	do r = ::ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

// The first DRM node whose driver is vgem: a primary node, since render nodes refuse dumb buffers.
UniqueFd open_vgem() {
	for (const char *prefix : {"/dev/dri/card", "/dev/dri/renderD"}) {
		for (int i = 0; i < 256; i++) {
			const std::string path = prefix + std::to_string(prefix[9] == 'r' ? 128 + i : i);
			UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
			if (!fd) continue;
			drmVersionPtr v = drmGetVersion(fd.get());
			const bool vgem = v && v->name && std::strcmp(v->name, "vgem") == 0;
			drmFreeVersion(v);
			if (vgem) return fd;
		}
	}
	return UniqueFd();
}

} // namespace

void GemHandle::reset() {
	if (node_ < 0) return;
	drm_gem_close req{handle_, 0};
	drm_ioctl(node_, DRM_IOCTL_GEM_CLOSE, &req);
	node_ = -1;
}

const char *SimAllocator::name() const {
	switch (kind_) {
	case Kind::memfd: return "memfd";
	case Kind::udmabuf: return "udmabuf";
	case Kind::vgem: return "vgem";
	}
	return "?";
}

Result<std::unique_ptr<SimAllocator>> SimAllocator::open(DmabufPolicy policy) {
	std::unique_ptr<SimAllocator> a(new SimAllocator());
	if (policy == DmabufPolicy::off) return a;
	std::string why;
	const bool want_udmabuf = policy != DmabufPolicy::vgem, want_vgem = policy != DmabufPolicy::udmabuf;
	if (want_udmabuf) {
		a->dev_.reset(::open(kUdmabufPath, O_RDWR | O_CLOEXEC));
		if (a->dev_) {
			a->kind_ = Kind::udmabuf;
			// One throwaway buffer finds out whether this kernel accepts our memfds.
			auto probe = a->make(page_size(), "vscanout-sim-probe");
			if (probe) return a;
			why = probe.error();
		} else {
			why = std::string(kUdmabufPath) + ": " + errno_text();
		}
	}
	if (want_vgem) {
		a->dev_ = open_vgem();
		if (a->dev_) {
			a->kind_ = Kind::vgem;
			auto probe = a->make(page_size(), "vscanout-sim-probe");
			if (probe) return a;
			why += (why.empty() ? "" : "; ") + probe.error();
		} else {
			why += (why.empty() ? "" : "; ") + std::string("no vgem DRM node (load the vgem module)");
		}
	}
	if (policy != DmabufPolicy::automatic)
		return fail("sim: dmabuf=" +
		            std::string(policy == DmabufPolicy::vgem      ? "vgem"
		                        : policy == DmabufPolicy::udmabuf ? "udmabuf"
		                                                          : "on") +
		            ", but " + why + " (or use dmabuf=auto)");
	VLOG_DEBUG("sim: %s; using memfd buffers", why.c_str());
	a->dev_.reset();
	a->kind_ = Kind::memfd;
	return a;
}

Result<SimBuffer> SimAllocator::make(uint64_t bytes, const char *name) const {
	SimBuffer b;
	b.size = align_up(bytes, page_size());
	if (kind_ == Kind::vgem) {
		// A dumb buffer of 4096-byte rows: vgem only needs the size.
		drm_mode_create_dumb create{};
		create.width = 1024;
		create.height = static_cast<uint32_t>(b.size / 4096);
		create.bpp = 32;
		if (drm_ioctl(dev_.get(), DRM_IOCTL_MODE_CREATE_DUMB, &create) != 0)
			return fail("sim: vgem CREATE_DUMB failed: " + errno_text());
		b.gem = GemHandle(dev_.get(), create.handle);
		b.size = create.size;
		drm_mode_map_dumb map{};
		map.handle = create.handle;
		if (drm_ioctl(dev_.get(), DRM_IOCTL_MODE_MAP_DUMB, &map) != 0)
			return fail("sim: vgem MAP_DUMB failed: " + errno_text());
		void *p =
		    ::mmap(nullptr, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev_.get(), static_cast<off_t>(map.offset));
		if (p == MAP_FAILED) return fail("sim: cannot map a vgem buffer: " + errno_text());
		b.map = Mapping(p, b.size);
		drm_prime_handle prime{create.handle, DRM_CLOEXEC | DRM_RDWR, -1};
		if (drm_ioctl(dev_.get(), DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) != 0)
			return fail("sim: vgem PRIME_HANDLE_TO_FD failed: " + errno_text());
		b.dmabuf.reset(prime.fd);
		return b;
	}
	// udmabuf needs a sealed-against-shrinking memfd whose size is a whole number of pages:
	// make_memfd seals it.
	auto fd = make_memfd(name, b.size);
	if (!fd) return fail("sim: cannot create a buffer: " + fd.error());
	b.memfd = std::move(*fd);
	auto map = Mapping::map(b.memfd.get(), b.size, PROT_READ | PROT_WRITE);
	if (!map) return fail("sim: cannot map a buffer: " + map.error());
	b.map = std::move(*map);
	if (kind_ == Kind::udmabuf) {
		udmabuf_create req{static_cast<__u32>(b.memfd.get()), UDMABUF_FLAGS_CLOEXEC, 0, b.size};
		b.dmabuf.reset(::ioctl(dev_.get(), UDMABUF_CREATE, &req));
		if (!b.dmabuf) return fail("sim: UDMABUF_CREATE failed: " + errno_text());
	}
	return b;
}

Result<uint32_t> SimAllocator::attach_write_fence(const SimBuffer &buffer) const {
	if (kind_ != Kind::vgem || !buffer.gem) return fail("fences need vgem buffers (dmabuf=vgem)");
	vgem_fence_attach req{buffer.gem.get(), kVgemFenceWrite, 0, 0};
	if (drm_ioctl(dev_.get(), kVgemFenceAttach, &req) != 0) return fail("VGEM_FENCE_ATTACH failed: " + errno_text());
	return req.out_fence;
}

Status SimAllocator::signal_fence(uint32_t fence) const {
	vgem_fence_signal req{fence, 0};
	if (drm_ioctl(dev_.get(), kVgemFenceSignal, &req) != 0) return fail("VGEM_FENCE_SIGNAL failed: " + errno_text());
	return Ok{};
}

} // namespace vscanout::vgpu
