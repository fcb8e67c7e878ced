// The VFIO source: each VFIO device with a display is one head. The kernel API has no change
// events, so heads are polled (--poll-hz). docs/design.md, "VFIO quirks", lists the driver quirks handled here.
// A device with an EDID region (VFIO_REGION_SUBTYPE_GFX_EDID: mbochs, GVT-g, NVIDIA vGPU) is given
// an EDID whose preferred mode is the size of what shows it (window_resized, or size= in the spec),
// within the region's max_xres/max_yres, once a burst of resizes has settled; its link goes down
// for the write and comes up 100 ms later, so the guest notices and reads it again.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/source.hpp"
#include "vgpu/vfio_device.hpp"

namespace vscanout::vgpu {

// How a device hands out its planes.
enum class PlaneTransport { dmabuf, region };

// What a --source spec says about one device beyond naming it: vfio:<device>[,size=WxH][,edid=off].
struct VfioHeadOptions {
	bool edid = true;               // edid=off: never touch the device's EDID region
	uint32_t width = 0, height = 0; // size=WxH: the preferred mode offered at start (headless)
};

struct VfioSourceOptions {
	bool edid = true;            // false (--no-edid): no head's EDID region is touched
	int edid_settle_ms = 300;    // a resize burst becomes one EDID update this long after it
	int edid_link_down_ms = 100; // the link stays down this long around a write, so that the
	                             // guest notices (QEMU waits as long)
};

class VfioSource final : public Source {
public:
	// Probes every device; a device without a usable display is an error naming it.
	// per_head: one entry per device, or empty for the defaults.
	static Result<std::unique_ptr<VfioSource>> create(std::vector<std::unique_ptr<VfioDevice>> devices, int poll_hz,
	                                                  std::vector<VfioHeadOptions> per_head = {},
	                                                  VfioSourceOptions options = {});

	~VfioSource() override;

	std::string name() const override { return "vfio"; }
	std::vector<uint32_t> heads() const override;
	Result<PlaneInfo> query(uint32_t head, PlaneType type) override;
	Result<GuestBuffer> open_buffer(const PlaneInfo &plane) override;
	bool needs_content_watch(uint32_t head) const override { return false; }
	// Region planes: advances when a poll's read of the plane found new content.
	uint64_t damage_seq(uint32_t head) const override;
	bool connected(uint32_t head) const override { return head < heads_.size() && !heads_[head].lost; }
	int poll_hz() const override { return poll_hz_; }
	// The guest's preferred mode follows the window (the EDID region), once the size settles.
	void window_resized(uint32_t head, uint32_t width, uint32_t height) override;
	std::vector<int> watch_fds() const override;
	void dispatch(int fd) override;

	PlaneTransport transport(uint32_t head) const { return heads_.at(head).transport; }
	bool lost(uint32_t head) const { return heads_.at(head).lost; }
	bool has_edid(uint32_t head) const { return heads_.at(head).edid.region >= 0; }
	// The size the last EDID written offered as preferred (0x0: none written).
	uint32_t edid_width(uint32_t head) const { return heads_.at(head).edid.shown_w; }
	uint32_t edid_height(uint32_t head) const { return heads_.at(head).edid.shown_h; }
	int edid_timer_fd() const { return edid_timer_.get(); }
	// An EDID write or a link-up is still to come.
	bool edid_busy() const;

	// Region planes read so far with a failure (tests: the cause is logged once per failing run).
	uint64_t region_read_failures(uint32_t head) const { return heads_.at(head).region_failures; }

private:
	// A region plane (docs/design.md, "VFIO"): the guest draws in place into a device region
	// that a reset or removal can revoke. It is never handed out as a mapping: each poll copies
	// the plane's bytes (stride x height, never the whole region) into a memfd of ours, which the
	// import maps, through a guarded copy (a revoked mapping is an error, not SIGBUS) or pread
	// where the region cannot be mapped; the copy itself tells whether anything changed.
	struct RegionPlane {
		using Config = std::tuple<uint32_t, uint64_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t>;
		Config config{};
		bool configured = false;
		uint64_t id = 0;        // the buffer id this configuration goes by (a new one per config)
		UniqueFd snapshot;      // the memfd the import maps
		Mapping snapshot_view;  // our writable view of it
		Mapping source;         // the region's first bytes, for mappable regions
		bool use_pread = false; // the region is read, not mapped
		bool remap = false;     // the last read failed: map again before the next
		uint32_t region_index = 0;
		size_t bytes = 0;             // stride x height: what each poll reads
		std::vector<uint8_t> scratch; // pread's landing place
		bool failing = false;         // logged that reading fails; cleared by a good read
		void drop() { *this = RegionPlane{}; }
	};
	struct Head {
		std::unique_ptr<VfioDevice> device;
		PlaneTransport transport = PlaneTransport::dmabuf;
		bool cursor = false;
		bool lost = false;
		bool quiet_zero = false;              // logged that the driver answered without filling the struct
		bool quiet_region_past_count = false; // logged that region_index is past num_regions (mdpy)
		std::optional<uint32_t> num_regions;  // VFIO_DEVICE_GET_INFO, where the device tells
		std::array<RegionPlane, 2> planes;    // region transport: primary, cursor
		uint64_t damage = 0;                  // region primary: new content seen
		uint64_t region_failures = 0;
		struct Edid {
			int region = -1; // the EDID region's index; -1: none, turned off, or failed
			vfio_region_gfx_edid regs{};
			bool pending = false;
			uint32_t want_w = 0, want_h = 0;
			std::chrono::steady_clock::time_point due{};
			uint32_t shown_w = 0, shown_h = 0;
			bool link_up_pending = false; // written with the link down; up again at link_up_due
			bool link_down = false;       // we took the link down and have not brought it up since
			std::chrono::steady_clock::time_point link_up_due{};
		} edid;
	};
	VfioSource() = default;
	Result<PlaneInfo> convert(uint32_t head, PlaneType type, const vfio_device_gfx_plane_info &info) const;
	// Region planes: names the configuration (a new id when it changed) and, when a snapshot
	// exists, reads the plane into it.
	void refresh_region(uint32_t head, PlaneInfo &plane);
	Result<GuestBuffer> open_region(uint32_t head, const PlaneInfo &plane);
	// Reads the plane's bytes into the snapshot; whether they changed.
	Result<bool> read_region(Head &h, RegionPlane &rp);
	bool removal_started(const Head &h) const;
	void lose(uint32_t head, const char *why);
	void probe_edid(uint32_t head, const VfioHeadOptions &options);
	void write_edid(uint32_t head, uint32_t width, uint32_t height);
	void link_up(uint32_t head);
	void edid_failed(uint32_t head, int error);
	void arm_edid_timer();

	std::vector<Head> heads_;
	int poll_hz_ = 60;
	VfioSourceOptions options_;
	UniqueFd edid_timer_; // timerfd: the next settled resize is due
	uint64_t next_region_id_ = 1;
};

// One --source spec split: "vfio:<device>" or "vfio-fd:<n>[:<device>]", then ",key=value" options
// (size=WxH, edid=on|off). The device part is what comes before the first comma.
struct VfioSpec {
	bool by_fd = false;
	int fd = -1;
	std::string device;
	VfioHeadOptions options;
};
Result<VfioSpec> parse_vfio_spec(const std::string &spec);

// Opens the devices of parsed "vfio:<spec>" / "vfio-fd:<n>" source arguments (vgpu::open_source
// parses them), one head each.
Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<VfioSpec> &specs, int poll_hz,
                                                     VfioSourceOptions options = {});
// The same from the arguments as given (parsed here, once).
Result<std::unique_ptr<VfioSource>> open_vfio_source(const std::vector<std::string> &specs, int poll_hz,
                                                     VfioSourceOptions options = {});

} // namespace vscanout::vgpu
