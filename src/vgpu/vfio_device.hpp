// One VFIO device with a display, reached through the kernel's VFIO API (<linux/vfio.h>).
// The interface is virtual so the source's handling of driver quirks can be tested without a
// kernel; KernelVfioDevice is the real thing.
#pragma once

#include <linux/vfio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/mapping.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace vscanout::vgpu {

struct RegionInfo {
	uint64_t offset = 0; // mmap offset of the region in the device fd
	uint64_t size = 0;
	bool mappable = false; // VFIO_REGION_INFO_FLAG_MMAP
	bool readable = true;  // VFIO_REGION_INFO_FLAG_READ: pread at offset works
};

class VfioDevice {
public:
	virtual ~VfioDevice() = default;
	// VFIO_DEVICE_QUERY_GFX_PLANE; returns 0 or an errno value.
	virtual int query_plane(vfio_device_gfx_plane_info &info) = 0;
	// VFIO_DEVICE_GET_GFX_DMABUF: a new dma-buf fd each call.
	virtual Result<UniqueFd> get_dmabuf(uint32_t dmabuf_id) = 0;
	virtual Result<RegionInfo> region_info(uint32_t index) = 0;
	// How many regions the device has (VFIO_DEVICE_GET_INFO's num_regions): a plane's
	// region_index is checked against it. An error where the device cannot tell.
	virtual Result<uint32_t> num_regions() { return fail("the device does not say how many regions it has"); }
	// The first len bytes of a mappable region, mapped read-only. A device reset or removal can
	// revoke the mapping under us: read it only with guarded_copy_changed (base/guarded_copy.hpp).
	virtual Result<Mapping> map_region(uint32_t index, size_t len) { return fail("regions cannot be mapped"); }
	// A new descriptor of the device itself.
	virtual Result<UniqueFd> dup_fd() = 0;
	// The index of the region whose capability chain names this type and subtype
	// (VFIO_REGION_INFO_CAP_TYPE), or -1 when the device has none. A device without regions of
	// that kind (or a fake that knows none) answers -1.
	virtual int find_region(uint32_t type, uint32_t subtype) { return -1; }
	// Reads or writes len bytes at offset inside a region (pread/pwrite on the device fd); returns
	// 0 or an errno value. A short transfer is EIO.
	virtual int region_read(uint32_t index, uint64_t offset, void *buf, size_t len) { return ENOTTY; }
	virtual int region_write(uint32_t index, uint64_t offset, const void *buf, size_t len) { return ENOTTY; }
	virtual const std::string &name() const = 0;
	// The device's sysfs directory where known ("" for an fd handed over without one).
	virtual const std::string &sysfs_path() const = 0;
};

class KernelVfioDevice final : public VfioDevice {
public:
	// spec: an mdev UUID, a PCI address (0000:00:02.0 or 00:02.0) or a sysfs device path.
	// Opens it through the group/container API with a TYPE1v2 IOMMU.
	static Result<std::unique_ptr<KernelVfioDevice>> open(const std::string &spec);
	// Takes over a device fd a launcher already opened (--source vfio-fd:N[:device]); device, when
	// given, names it as open() does, so its removal can be noticed.
	static Result<std::unique_ptr<KernelVfioDevice>> adopt(int fd, const std::string &device = "");

	int query_plane(vfio_device_gfx_plane_info &info) override;
	Result<UniqueFd> get_dmabuf(uint32_t dmabuf_id) override;
	Result<RegionInfo> region_info(uint32_t index) override;
	Result<uint32_t> num_regions() override;
	Result<Mapping> map_region(uint32_t index, size_t len) override;
	Result<UniqueFd> dup_fd() override;
	int find_region(uint32_t type, uint32_t subtype) override;
	int region_read(uint32_t index, uint64_t offset, void *buf, size_t len) override;
	int region_write(uint32_t index, uint64_t offset, const void *buf, size_t len) override;
	const std::string &name() const override { return name_; }
	const std::string &sysfs_path() const override { return sysfs_; }

private:
	KernelVfioDevice() = default;
	// VFIO_DEVICE_GET_REGION_INFO with room for the capability chain the driver says it needs.
	int get_region_info(uint32_t index, std::vector<uint8_t> &buf);
	std::string name_;
	std::string sysfs_;
	UniqueFd container_;
	UniqueFd group_;
	UniqueFd device_;
};

// Walks the capability chain of a VFIO_DEVICE_GET_REGION_INFO answer (buf holds the answer, argsz
// bytes and no more): whether a VFIO_REGION_INFO_CAP_TYPE entry names this type and subtype.
// Offsets out of bounds, overlapping or looping end the walk.
bool region_has_type(const std::vector<uint8_t> &buf, uint32_t type, uint32_t subtype);

// The sysfs path of a device named by UUID, PCI address or path; an error says what was tried.
Result<std::string> resolve_vfio_device(const std::string &spec, const std::string &sysfs_root = "/sys");

} // namespace vscanout::vgpu
