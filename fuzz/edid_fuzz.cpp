// EDIDs for a VFIO device (vgpu/edid.cpp and the EDID path of vgpu/vfio_source.cpp), where the
// device decides the limits: its EDID region's registers (max_xres, max_yres, edid_max_size,
// edid_offset), whether its writes fail, and the sizes asked for as a window follows the guest.
// Also the capability chain of a region-info answer (region_has_type), which the device writes
// and which finds the EDID region.
//
// Checked: every EDID generated is a 128-byte EDID 1.4 block with a good checksum whose preferred
// detailed timing is the size asked for within [640x480, 4095x4095] and the device's limits,
// whose range limits cover it, and whose clock fits a DTD; what the source writes to the region
// is such an EDID, at the region's blob offset, never larger than the region takes, with the
// link taken down before and brought up after.
#include <linux/vfio.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "vgpu/edid.hpp"
#include "vgpu/vfio_device.hpp"
#include "vgpu/vfio_source.hpp"

namespace vscanout::fuzz {
namespace {

using namespace vgpu;

struct Dtd {
	uint32_t clock_khz, hactive, vactive, htotal, vtotal;
};
Dtd read_dtd(const uint8_t *d) {
	Dtd t;
	t.clock_khz = (uint32_t{d[0]} | uint32_t{d[1]} << 8) * 10;
	t.hactive = d[2] | (uint32_t{d[4]} >> 4) << 8;
	t.vactive = d[5] | (uint32_t{d[7]} >> 4) << 8;
	t.htotal = t.hactive + (d[3] | (uint32_t{d[4]} & 15) << 8);
	t.vtotal = t.vactive + (d[6] | (uint32_t{d[7]} & 15) << 8);
	return t;
}

// An EDID block as vscanout promises it; returns its preferred size.
Dtd check_edid(const std::vector<uint8_t> &e) {
	FUZZ_CHECK(e.size() == 128);
	static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
	FUZZ_CHECK(std::memcmp(e.data(), header, 8) == 0);
	uint8_t sum = 0;
	for (uint8_t b : e) sum = static_cast<uint8_t>(sum + b);
	FUZZ_CHECK(sum == 0);
	FUZZ_CHECK(e[18] == 1 && e[19] == 4 && e[126] == 0);
	const Dtd t = read_dtd(&e[54]);
	FUZZ_CHECK(t.clock_khz > 0 && t.clock_khz <= kEdidMaxClockKhz);
	FUZZ_CHECK(t.hactive >= kEdidMinWidth && t.hactive <= kEdidMaxSide);
	FUZZ_CHECK(t.vactive >= kEdidMinHeight && t.vactive <= kEdidMaxSide);
	FUZZ_CHECK(t.htotal > t.hactive && t.vtotal > t.vactive);
	// The range limits descriptor covers the preferred timing.
	const uint8_t *r = &e[72];
	FUZZ_CHECK(r[0] == 0 && r[1] == 0 && r[3] == 0xfd);
	const double refresh = t.clock_khz * 1000.0 / (double(t.htotal) * t.vtotal);
	const double hfreq_khz = double(t.clock_khz) / t.htotal;
	FUZZ_CHECK(refresh >= 1);
	FUZZ_CHECK(r[5] <= std::floor(refresh) && std::floor(refresh) <= r[6]);
	FUZZ_CHECK(r[7] <= std::floor(hfreq_khz) && std::ceil(hfreq_khz) <= r[8]);
	FUZZ_CHECK(uint32_t{r[9]} * 10000 >= t.clock_khz);
	// The text descriptors hold printable ASCII only.
	for (int d : {90, 108})
		for (int i = 5; i < 18; i++) FUZZ_CHECK(e[d + i] == 0x0a || (e[d + i] >= 0x20 && e[d + i] < 0x7f));
	return t;
}

void fuzz_generate(FuzzedDataProvider &in) {
	EdidParams p;
	p.width = in.ConsumeIntegral<uint32_t>();
	p.height = in.ConsumeIntegral<uint32_t>();
	p.product = in.ConsumeIntegral<uint16_t>();
	p.serial = in.ConsumeIntegral<uint32_t>();
	p.dpi = in.ConsumeIntegral<uint32_t>();
	p.name = in.ConsumeRandomLengthString(32);
	const Dtd t = check_edid(generate_edid(p));
	FUZZ_CHECK(t.hactive == std::clamp(p.width, kEdidMinWidth, kEdidMaxSide));
	FUZZ_CHECK(t.vactive == std::clamp(p.height, kEdidMinHeight, kEdidMaxSide));
}

// A device whose EDID region registers and write results the input decides.
class FuzzDevice final : public VfioDevice {
public:
	static constexpr uint32_t kEdidIndex = 3;
	vfio_region_gfx_edid regs{};
	int read_error = 0;
	std::vector<int> write_errors; // the next region writes answer these, then 0
	std::vector<std::string> ops;
	std::vector<uint8_t> blob;
	// Whether a link-up was at least tried since the link last went down (a write of ours
	// that failed may leave it down); set when the device dies.
	bool up_tried = true;
	int *up_tried_at_exit = nullptr;

	~FuzzDevice() override {
		if (up_tried_at_exit) *up_tried_at_exit = up_tried;
	}
	int query_plane(vfio_device_gfx_plane_info &info) override {
		// A dma-buf display without a cursor plane.
		if (info.flags & VFIO_GFX_PLANE_TYPE_PROBE)
			return (info.flags & VFIO_GFX_PLANE_TYPE_DMABUF) && info.drm_plane_type == 1 ? 0 : EINVAL;
		return 0;
	}
	Result<UniqueFd> get_dmabuf(uint32_t) override { return fail("none"); }
	Result<RegionInfo> region_info(uint32_t) override { return fail("none"); }
	Result<UniqueFd> dup_fd() override { return fail("none"); }
	int find_region(uint32_t type, uint32_t subtype) override {
		return type == VFIO_REGION_TYPE_GFX && subtype == VFIO_REGION_SUBTYPE_GFX_EDID ? kEdidIndex : -1;
	}
	int region_read(uint32_t index, uint64_t offset, void *buf, size_t len) override {
		FUZZ_CHECK(index == kEdidIndex && offset == 0 && len == sizeof regs);
		if (read_error) return read_error;
		std::memcpy(buf, &regs, len);
		return 0;
	}
	int region_write(uint32_t index, uint64_t offset, const void *buf, size_t len) override {
		FUZZ_CHECK(index == kEdidIndex);
		uint32_t v = 0;
		if (offset == offsetof(vfio_region_gfx_edid, link_state) && len == 4) {
			std::memcpy(&v, buf, 4);
			if (v == VFIO_DEVICE_GFX_LINK_STATE_UP) up_tried = true;
		}
		if (!write_errors.empty()) {
			const int e = write_errors.front();
			write_errors.erase(write_errors.begin());
			if (e) return e;
		}
		if (offset == offsetof(vfio_region_gfx_edid, link_state)) {
			FUZZ_CHECK(len == 4);
			FUZZ_CHECK(v == VFIO_DEVICE_GFX_LINK_STATE_UP || v == VFIO_DEVICE_GFX_LINK_STATE_DOWN);
			if (v == VFIO_DEVICE_GFX_LINK_STATE_DOWN) up_tried = false;
			regs.link_state = v;
			ops.push_back(v == VFIO_DEVICE_GFX_LINK_STATE_UP ? "up" : "down");
		} else if (offset == offsetof(vfio_region_gfx_edid, edid_size)) {
			FUZZ_CHECK(len == 4);
			std::memcpy(&v, buf, 4);
			FUZZ_CHECK(v == blob.size() && v <= regs.edid_max_size);
			FUZZ_CHECK(!ops.empty() && ops.back() == "blob");
			regs.edid_size = v;
			ops.push_back("size");
		} else {
			FUZZ_CHECK(offset == regs.edid_offset); // the blob goes where the device said
			FUZZ_CHECK(len <= regs.edid_max_size);
			FUZZ_CHECK(regs.link_state == VFIO_DEVICE_GFX_LINK_STATE_DOWN);
			blob.assign(static_cast<const uint8_t *>(buf), static_cast<const uint8_t *>(buf) + len);
			ops.push_back("blob");
		}
		return 0;
	}
	const std::string &name() const override { return name_; }
	const std::string &sysfs_path() const override { return sysfs_; }

private:
	std::string name_ = "fuzz";
	std::string sysfs_;
};

int pick_errno(FuzzedDataProvider &in) { return in.PickValueInArray({0, 0, 0, 0, EINVAL, EIO, ENODEV, EAGAIN}); }

uint32_t side(FuzzedDataProvider &in) {
	return in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 5000) : in.ConsumeIntegral<uint32_t>();
}

void fuzz_source(FuzzedDataProvider &in) {
	auto dev = std::make_unique<FuzzDevice>();
	FuzzDevice &d = *dev;
	d.regs.edid_offset = in.ConsumeIntegral<uint32_t>();
	d.regs.edid_max_size =
	    in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 512) : in.ConsumeIntegral<uint32_t>();
	d.regs.max_xres = in.ConsumeBool() ? 0 : side(in);
	d.regs.max_yres = in.ConsumeBool() ? 0 : side(in);
	d.regs.link_state = in.ConsumeIntegral<uint32_t>();
	d.read_error = in.ConsumeBool() ? 0 : pick_errno(in);
	for (int i = in.ConsumeIntegralInRange<int>(0, 4); i > 0; i--) d.write_errors.push_back(pick_errno(in));
	const vfio_region_gfx_edid regs = d.regs;
	const bool writes_ok = d.write_errors.empty();
	int up_tried_at_exit = -1;
	d.up_tried_at_exit = &up_tried_at_exit;

	VfioHeadOptions head;
	if (in.ConsumeBool()) {
		head.width = side(in);
		head.height = side(in);
	}
	VfioSourceOptions options;
	options.edid_settle_ms = 0;
	options.edid_link_down_ms = in.ConsumeBool() ? 0 : 1;
	std::vector<std::unique_ptr<VfioDevice>> devices;
	devices.push_back(std::move(dev));
	auto source = VfioSource::create(std::move(devices), 60, {head}, options);
	FUZZ_CHECK(source.ok());
	VfioSource &s = **source;
	// A region too small for an EDID, or whose blob offset lies on its registers, is left alone.
	if (regs.edid_max_size < 128 || regs.edid_offset < sizeof regs) FUZZ_CHECK(!s.has_edid(0));
	// From here on d is only touched while the source has not lost it (losing a device destroys it).
	for (int step = 0; step < 16 && in.remaining_bytes() > 0; step++) {
		if (s.lost(0)) break; // the device is gone (and d with it)
		const uint32_t w = side(in), h = side(in);
		s.window_resized(0, w, h);
		for (int fd : s.watch_fds()) s.dispatch(fd);
		if (s.lost(0) || !s.has_edid(0) || d.blob.empty()) continue;
		// What the guest was given: an EDID for the size asked, within the device's limits where
		// those are no smaller than an EDID's smallest mode.
		const Dtd t = check_edid(d.blob);
		FUZZ_CHECK(t.hactive == s.edid_width(0) && t.vactive == s.edid_height(0));
		if (regs.max_xres >= kEdidMinWidth) FUZZ_CHECK(t.hactive <= regs.max_xres);
		if (regs.max_yres >= kEdidMinHeight) FUZZ_CHECK(t.vactive <= regs.max_yres);
		if (writes_ok && w && h) {
			const uint32_t want_w = regs.max_xres ? std::min(w, regs.max_xres) : w;
			FUZZ_CHECK(t.hactive == std::clamp(want_w, kEdidMinWidth, kEdidMaxSide));
		}
	}
	const bool lost = s.lost(0);
	source->reset();
	// A guest is never left with its link down by an update of ours: a link-up was at least tried
	// after the last time it went down, unless the device is gone.
	if (!lost) FUZZ_CHECK(up_tried_at_exit == 1);
}

// A region-info answer as the driver writes it: the fixed part, then a capability chain.
void fuzz_region_caps(FuzzedDataProvider &in) {
	std::vector<uint8_t> buf = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 512));
	const uint32_t type = in.ConsumeBool() ? VFIO_REGION_TYPE_GFX : in.ConsumeIntegral<uint32_t>();
	const uint32_t subtype = in.ConsumeBool() ? VFIO_REGION_SUBTYPE_GFX_EDID : in.ConsumeIntegral<uint32_t>();
	const bool found = region_has_type(buf, type, subtype);
	if (!found) return;
	// Then such an entry is really there, inside the answer, after the fixed part.
	bool there = false;
	for (size_t off = sizeof(vfio_region_info); off + sizeof(vfio_region_info_cap_type) <= buf.size(); off++) {
		vfio_region_info_cap_type cap{};
		std::memcpy(&cap, buf.data() + off, sizeof cap);
		there |= cap.header.id == VFIO_REGION_INFO_CAP_TYPE && cap.type == type && cap.subtype == subtype;
	}
	FUZZ_CHECK(there);
}

} // namespace
} // namespace vscanout::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace vscanout::fuzz;
	quiet_logs();
	FuzzedDataProvider in(data, size);
	switch (in.ConsumeIntegralInRange<int>(0, 2)) {
	case 0: fuzz_generate(in); break;
	case 1: fuzz_source(in); break;
	case 2: fuzz_region_caps(in); break;
	}
	return 0;
}
