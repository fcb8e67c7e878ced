// The VFIO source: each VFIO device with a display is one head. The kernel API has no change
// events, so heads are polled (--poll-hz). docs/design.md, "VFIO quirks", lists the driver quirks handled here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vgpu/source.hpp"
#include "vgpu/vfio_device.hpp"

namespace vscanout::vgpu {

// How a device hands out its planes.
enum class PlaneTransport { dmabuf, region };

class VfioSource final : public Source {
public:
	// Probes every device; a device without a usable display is an error naming it.
	static Result<std::unique_ptr<VfioSource>> create(std::vector<std::unique_ptr<VfioDevice>> devices, int poll_hz);

	std::string name() const override { return "vfio"; }
	std::vector<uint32_t> heads() const override;
	Result<PlaneInfo> query(uint32_t head, PlaneType type) override;
	Result<GuestBuffer> open_buffer(const PlaneInfo &plane) override;
	bool needs_content_watch(uint32_t head) const override;
	bool connected(uint32_t head) const override { return head < heads_.size() && !heads_[head].lost; }
	int poll_hz() const override { return poll_hz_; }

	PlaneTransport transport(uint32_t head) const { return heads_.at(head).transport; }
	bool lost(uint32_t head) const { return heads_.at(head).lost; }

private:
	struct Head {
		std::unique_ptr<VfioDevice> device;
		PlaneTransport transport = PlaneTransport::dmabuf;
		bool cursor = false;
		bool lost = false;
		bool quiet_zero = false; // logged that the driver answered without filling the struct
	};
	VfioSource() = default;
	Result<PlaneInfo> convert(uint32_t head, PlaneType type, const vfio_device_gfx_plane_info &info) const;
	bool removal_started(const Head &h) const;
	void lose(uint32_t head, const char *why);

	std::vector<Head> heads_;
	int poll_hz_ = 60;
};

// Parses "vfio:<spec>" / "vfio-fd:<n>" source arguments and opens the devices.
Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<std::string> &specs, int poll_hz);

} // namespace vscanout::vgpu
