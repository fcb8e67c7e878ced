#include "vgpu/vfio_device.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <regex>

namespace vscanout::vgpu {
namespace {

std::string errstr(int e) { return std::strerror(e); }

bool exists(const std::string &p) {
	struct stat st {};
	return ::stat(p.c_str(), &st) == 0;
}

std::string basename_of(const std::string &p) {
	auto slash = p.find_last_of('/');
	return slash == std::string::npos ? p : p.substr(slash + 1);
}

} // namespace

Result<std::string> resolve_vfio_device(const std::string &spec, const std::string &sysfs_root) {
	static const std::regex uuid("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
	static const std::regex pci_full("^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$");
	static const std::regex pci_short("^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$");
	std::string path;
	if (std::regex_match(spec, uuid))
		path = sysfs_root + "/bus/mdev/devices/" + spec;
	else if (std::regex_match(spec, pci_full))
		path = sysfs_root + "/bus/pci/devices/" + spec;
	else if (std::regex_match(spec, pci_short))
		path = sysfs_root + "/bus/pci/devices/0000:" + spec;
	else if (!spec.empty() && spec[0] == '/')
		path = spec;
	else
		return fail("'" + spec + "' is neither an mdev UUID, a PCI address nor a sysfs device path");
	if (!exists(path)) return fail("no such device: " + path);
	return path;
}

Result<std::unique_ptr<KernelVfioDevice>> KernelVfioDevice::open(const std::string &spec) {
	auto path = resolve_vfio_device(spec);
	if (!path) return path.take_error();
	char group_link[PATH_MAX];
	ssize_t n = ::readlink((*path + "/iommu_group").c_str(), group_link, sizeof group_link - 1);
	if (n < 0) return fail(*path + " has no IOMMU group (is it bound to vfio-pci or an mdev driver?)");
	group_link[n] = 0;
	const std::string group = basename_of(group_link);
	char real[PATH_MAX];
	const std::string dev_name = basename_of(::realpath(path->c_str(), real) ? real : *path);

	std::unique_ptr<KernelVfioDevice> d(new KernelVfioDevice());
	d->name_ = spec;
	d->sysfs_ = *path;
	d->container_ = UniqueFd(::open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
	if (!d->container_) return fail("cannot open /dev/vfio/vfio: " + errstr(errno) + " (is the vfio module loaded?)");
	if (::ioctl(d->container_.get(), VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return fail("unexpected VFIO API version");
	if (::ioctl(d->container_.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
		return fail("the kernel offers no TYPE1v2 IOMMU (load vfio_iommu_type1)");
	const std::string group_path = "/dev/vfio/" + group;
	d->group_ = UniqueFd(::open(group_path.c_str(), O_RDWR | O_CLOEXEC));
	if (!d->group_) {
		int e = errno;
		return fail("cannot open " + group_path + ": " + errstr(e) +
		            (e == EBUSY ? " (another process, e.g. QEMU, owns this device: hand its fd over with "
		                          "--source vfio-fd:N)"
		                        : ""));
	}
	vfio_group_status status{sizeof(vfio_group_status), 0};
	if (::ioctl(d->group_.get(), VFIO_GROUP_GET_STATUS, &status) < 0 || !(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		return fail("IOMMU group " + group + " is not viable: bind every device in it to a VFIO driver");
	int cfd = d->container_.get();
	if (::ioctl(d->group_.get(), VFIO_GROUP_SET_CONTAINER, &cfd) < 0)
		return fail("VFIO_GROUP_SET_CONTAINER failed: " + errstr(errno));
	if (::ioctl(d->container_.get(), VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		return fail("VFIO_SET_IOMMU failed: " + errstr(errno));
	int fd = ::ioctl(d->group_.get(), VFIO_GROUP_GET_DEVICE_FD, dev_name.c_str());
	if (fd < 0) {
		int e = errno;
		return fail("cannot get the VFIO device fd of " + dev_name + ": " + errstr(e) +
		            (e == EBUSY ? " (it is already open elsewhere)" : ""));
	}
	d->device_ = UniqueFd(fd);
	::fcntl(fd, F_SETFD, FD_CLOEXEC);
	return d;
}

Result<std::unique_ptr<KernelVfioDevice>> KernelVfioDevice::adopt(int fd, const std::string &device) {
	std::string path;
	if (!device.empty()) {
		auto p = resolve_vfio_device(device);
		if (!p) return p.take_error();
		path = *p;
	}
	vfio_device_info info{sizeof(vfio_device_info)};
	if (::ioctl(fd, VFIO_DEVICE_GET_INFO, &info) < 0)
		return fail("fd " + std::to_string(fd) + " is not a VFIO device: " + errstr(errno));
	std::unique_ptr<KernelVfioDevice> d(new KernelVfioDevice());
	d->name_ = device.empty() ? "fd " + std::to_string(fd) : device;
	d->sysfs_ = path;
	d->device_ = UniqueFd(fd);
	::fcntl(fd, F_SETFD, FD_CLOEXEC);
	return d;
}

int KernelVfioDevice::query_plane(vfio_device_gfx_plane_info &info) {
	return ::ioctl(device_.get(), VFIO_DEVICE_QUERY_GFX_PLANE, &info) < 0 ? errno : 0;
}

Result<UniqueFd> KernelVfioDevice::get_dmabuf(uint32_t id) {
	int fd = ::ioctl(device_.get(), VFIO_DEVICE_GET_GFX_DMABUF, &id);
	if (fd < 0) return fail("VFIO_DEVICE_GET_GFX_DMABUF(" + std::to_string(id) + ") failed: " + errstr(errno));
	::fcntl(fd, F_SETFD, FD_CLOEXEC);
	return UniqueFd(fd);
}

Result<RegionInfo> KernelVfioDevice::region_info(uint32_t index) {
	vfio_region_info ri{};
	ri.argsz = sizeof ri;
	ri.index = index;
	if (::ioctl(device_.get(), VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
		return fail("VFIO_DEVICE_GET_REGION_INFO(" + std::to_string(index) + ") failed: " + errstr(errno));
	return RegionInfo{ri.offset, ri.size, (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0,
	                  (ri.flags & VFIO_REGION_INFO_FLAG_READ) != 0};
}

Result<uint32_t> KernelVfioDevice::num_regions() {
	vfio_device_info info{};
	info.argsz = sizeof info;
	if (::ioctl(device_.get(), VFIO_DEVICE_GET_INFO, &info) < 0)
		return fail(std::string("VFIO_DEVICE_GET_INFO failed: ") + errstr(errno));
	return info.num_regions;
}

Result<Mapping> KernelVfioDevice::map_region(uint32_t index, size_t len) {
	auto r = region_info(index);
	if (!r) return r.take_error();
	if (!r->mappable) return fail("region " + std::to_string(index) + " cannot be mmap()ed");
	if (len == 0 || len > r->size)
		return fail("region " + std::to_string(index) + " is smaller than the mapping asked");
	void *p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, device_.get(), static_cast<off_t>(r->offset));
	if (p == MAP_FAILED) return fail("mmap of region " + std::to_string(index) + " failed: " + errstr(errno));
	return Mapping(p, len);
}

int KernelVfioDevice::get_region_info(uint32_t index, std::vector<uint8_t> &buf) {
	// The driver says how much room its capability chain needs by raising argsz; mbochs refuses
	// an argsz larger than what it fills, so start with the bare struct and grow as told.
	constexpr uint32_t kMaxArgsz = 64 * 1024;
	uint32_t argsz = sizeof(vfio_region_info);
	for (int attempt = 0; attempt < 2; attempt++) {
		buf.assign(argsz, 0);
		vfio_region_info head{};
		head.argsz = argsz;
		head.index = index;
		std::memcpy(buf.data(), &head, sizeof head);
		if (::ioctl(device_.get(), VFIO_DEVICE_GET_REGION_INFO, buf.data()) < 0) return errno;
		std::memcpy(&head, buf.data(), sizeof head);
		if (head.argsz <= argsz || head.argsz > kMaxArgsz) return 0;
		argsz = head.argsz;
	}
	return 0;
}

int KernelVfioDevice::find_region(uint32_t type, uint32_t subtype) {
	vfio_device_info info{};
	info.argsz = sizeof info;
	if (::ioctl(device_.get(), VFIO_DEVICE_GET_INFO, &info) < 0) return -1;
	std::vector<uint8_t> buf;
	for (uint32_t i = 0; i < info.num_regions && i < 1024; i++)
		if (get_region_info(i, buf) == 0 && region_has_type(buf, type, subtype)) return static_cast<int>(i);
	return -1;
}

int KernelVfioDevice::region_read(uint32_t index, uint64_t offset, void *buf, size_t len) {
	auto r = region_info(index);
	if (!r) return EINVAL;
	if (offset > r->size || len > r->size - offset) return EINVAL;
	ssize_t n = ::pread(device_.get(), buf, len, static_cast<off_t>(r->offset + offset));
	if (n < 0) return errno;
	return static_cast<size_t>(n) == len ? 0 : EIO;
}

int KernelVfioDevice::region_write(uint32_t index, uint64_t offset, const void *buf, size_t len) {
	auto r = region_info(index);
	if (!r) return EINVAL;
	if (offset > r->size || len > r->size - offset) return EINVAL;
	ssize_t n = ::pwrite(device_.get(), buf, len, static_cast<off_t>(r->offset + offset));
	if (n < 0) return errno;
	return static_cast<size_t>(n) == len ? 0 : EIO;
}

bool region_has_type(const std::vector<uint8_t> &buf, uint32_t type, uint32_t subtype) {
	vfio_region_info info{};
	if (buf.size() < sizeof info) return false;
	std::memcpy(&info, buf.data(), sizeof info);
	if (!(info.flags & VFIO_REGION_INFO_FLAG_CAPS)) return false;
	// Each entry must lie after the last one: a chain that points back ends here.
	size_t off = info.cap_offset, floor = sizeof info;
	while (off >= floor && off <= buf.size() && buf.size() - off >= sizeof(vfio_info_cap_header)) {
		vfio_info_cap_header hdr{};
		std::memcpy(&hdr, buf.data() + off, sizeof hdr);
		if (hdr.id == VFIO_REGION_INFO_CAP_TYPE && buf.size() - off >= sizeof(vfio_region_info_cap_type)) {
			vfio_region_info_cap_type cap{};
			std::memcpy(&cap, buf.data() + off, sizeof cap);
			if (cap.type == type && cap.subtype == subtype) return true;
		}
		if (hdr.next == 0) break;
		floor = off + sizeof hdr;
		off = hdr.next;
	}
	return false;
}

Result<UniqueFd> KernelVfioDevice::dup_fd() {
	int fd = ::fcntl(device_.get(), F_DUPFD_CLOEXEC, 0);
	if (fd < 0) return fail("cannot duplicate the device fd: " + errstr(errno));
	return UniqueFd(fd);
}

} // namespace vscanout::vgpu
