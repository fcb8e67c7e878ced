// The VFIO source against a scripted fake device: every driver quirk of docs/design.md, "VFIO quirks".
#include <drm_fourcc.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "base/mapping.hpp"
#include "core/head_tracker.hpp"
#include "edid_check.hpp"
#include "vgpu/vfio_source.hpp"

using namespace vscanout;
using namespace vscanout::vgpu;

namespace {

// Answers QUERY_GFX_PLANE from a script of handlers; records what it was asked.
class FakeDevice final : public VfioDevice {
public:
	using Handler = std::function<int(vfio_device_gfx_plane_info &)>;
	bool dmabuf = true, region = false, cursor = true, no_display = false;
	std::deque<Handler> next; // one-shot answers for non-probe queries, then `steady`
	Handler steady = [](vfio_device_gfx_plane_info &) { return 0; };
	int queries = 0, dmabuf_calls = 0;
	uint32_t last_dmabuf_id = 0;
	bool saw_dirty_struct = false;

	int query_plane(vfio_device_gfx_plane_info &info) override {
		if (no_display) return ENOTTY;
		if (info.flags & VFIO_GFX_PLANE_TYPE_PROBE) {
			bool want_dmabuf = info.flags & VFIO_GFX_PLANE_TYPE_DMABUF;
			bool ok = want_dmabuf ? dmabuf : region;
			if (info.drm_plane_type == 2) ok = ok && cursor;
			return ok ? 0 : EINVAL;
		}
		queries++;
		// Everything after drm_plane_type is output: a caller must hand it over zeroed.
		const auto *out = reinterpret_cast<const uint8_t *>(&info.drm_format);
		for (size_t i = 0; i < sizeof info - offsetof(vfio_device_gfx_plane_info, drm_format); i++)
			if (out[i]) saw_dirty_struct = true;
		if (!next.empty()) {
			Handler h = next.front();
			next.pop_front();
			return h(info);
		}
		return steady(info);
	}
	Result<UniqueFd> get_dmabuf(uint32_t id) override {
		dmabuf_calls++;
		last_dmabuf_id = id;
		auto fd = make_memfd("fake-dmabuf", 8192);
		if (!fd) return fd.take_error();
		return std::move(*fd);
	}
	// Region 0 holds the region plane: a memfd of region_size bytes the test writes into and can
	// truncate (a revoked mapping: touching it raises SIGBUS, as after a device reset).
	uint64_t region_size = 2 << 20;
	bool region_mappable = true, region_readable = true;
	std::optional<uint32_t> regions; // num_regions; nullopt: the device cannot tell
	int plane_read_error = 0;        // answer reads of region 0 with this errno
	int plane_reads = 0, plane_maps = 0;
	UniqueFd region_mem;
	void make_region() {
		region_mem = UniqueFd(::memfd_create("fake-region", MFD_CLOEXEC));
		ASSERT_TRUE(region_mem);
		ASSERT_EQ(::ftruncate(region_mem.get(), static_cast<off_t>(region_size)), 0);
	}
	void poke(uint64_t offset, uint32_t value) {
		ASSERT_EQ(::pwrite(region_mem.get(), &value, sizeof value, static_cast<off_t>(offset)),
		          static_cast<ssize_t>(sizeof value));
	}
	void revoke() { ASSERT_EQ(::ftruncate(region_mem.get(), 0), 0); }
	void restore() { ASSERT_EQ(::ftruncate(region_mem.get(), static_cast<off_t>(region_size)), 0); }

	uint32_t plane_region = 0; // the index of the region holding the plane
	Result<RegionInfo> region_info(uint32_t index) override {
		if (index != plane_region) return fail("no region " + std::to_string(index));
		return RegionInfo{0x10000000000ull, region_size, region_mappable, region_readable};
	}
	Result<uint32_t> num_regions() override {
		if (!regions) return fail("cannot tell");
		return *regions;
	}
	Result<Mapping> map_region(uint32_t index, size_t len) override {
		if (index != plane_region || !region_mappable || !region_mem)
			return fail("cannot map region " + std::to_string(index));
		if (len > region_size) return fail("past the region");
		plane_maps++;
		auto m = Mapping::map(region_mem.get(), len, PROT_READ);
		if (!m) return m.take_error();
		return std::move(*m);
	}
	Result<UniqueFd> dup_fd() override {
		auto fd = make_memfd("fake-device", 4096);
		if (!fd) return fd.take_error();
		return std::move(*fd);
	}
	// An EDID region as mbochs has it: registers at 0, the blob at edid_offset; records what
	// was written, in order ("down", "blob", "size", "up").
	static constexpr uint32_t kEdidIndex = 9;
	bool edid_region = false;
	int find_region_calls = 0;
	int edid_write_error = 0; // answer every EDID region write with this errno
	int blob_write_error = 0; // answer the blob's write (only) with this errno
	vfio_region_gfx_edid edid_regs{0x800, 0x400, 0, 0, 0, 0};
	std::vector<uint8_t> blob;
	std::vector<std::string> edid_ops;
	std::vector<std::string> *edid_ops_at_exit = nullptr; // edid_ops copied here when the fake dies
	int blob_writes() const { return static_cast<int>(std::count(edid_ops.begin(), edid_ops.end(), "blob")); }
	std::vector<uint8_t> written_edid() const {
		return std::vector<uint8_t>(blob.begin(), blob.begin() + std::min<size_t>(edid_regs.edid_size, blob.size()));
	}

	int find_region(uint32_t type, uint32_t subtype) override {
		find_region_calls++;
		return edid_region && type == VFIO_REGION_TYPE_GFX && subtype == VFIO_REGION_SUBTYPE_GFX_EDID ? kEdidIndex : -1;
	}
	int region_read(uint32_t index, uint64_t offset, void *buf, size_t len) override {
		if (index == plane_region && region_mem) {
			plane_reads++;
			if (plane_read_error) return plane_read_error;
			const ssize_t n = ::pread(region_mem.get(), buf, len, static_cast<off_t>(offset));
			return n == static_cast<ssize_t>(len) ? 0 : EIO;
		}
		if (index != kEdidIndex || !edid_region || offset + len > sizeof edid_regs) return EINVAL;
		std::memcpy(buf, reinterpret_cast<const uint8_t *>(&edid_regs) + offset, len);
		return 0;
	}
	int region_write(uint32_t index, uint64_t offset, const void *buf, size_t len) override {
		if (index != kEdidIndex || !edid_region) return EINVAL;
		if (edid_write_error) return edid_write_error;
		uint32_t v = 0;
		if (len == 4) std::memcpy(&v, buf, 4);
		if (offset == offsetof(vfio_region_gfx_edid, link_state) && len == 4) {
			edid_regs.link_state = v;
			edid_ops.push_back(v == VFIO_DEVICE_GFX_LINK_STATE_DOWN ? "down"
			                   : v == VFIO_DEVICE_GFX_LINK_STATE_UP ? "up"
			                                                        : "?");
		} else if (offset == offsetof(vfio_region_gfx_edid, edid_size) && len == 4) {
			if (v > edid_regs.edid_max_size) return EINVAL;
			edid_regs.edid_size = v;
			edid_ops.push_back("size");
		} else if (offset == edid_regs.edid_offset && len <= edid_regs.edid_max_size) {
			if (blob_write_error) return blob_write_error;
			blob.assign(static_cast<const uint8_t *>(buf), static_cast<const uint8_t *>(buf) + len);
			edid_ops.push_back("blob");
		} else {
			return EINVAL;
		}
		return 0;
	}
	const std::string &name() const override { return name_; }
	const std::string &sysfs_path() const override { return sysfs_; }
	std::string name_ = "fake";
	std::string sysfs_;
	bool *destroyed = nullptr;
	~FakeDevice() override {
		if (destroyed) *destroyed = true;
		if (edid_ops_at_exit) *edid_ops_at_exit = edid_ops;
	}
};

int fill_primary(vfio_device_gfx_plane_info &i) {
	i.drm_format = DRM_FORMAT_XRGB8888;
	i.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	i.width = 640;
	i.height = 480;
	i.stride = 2560;
	i.size = 2560 * 480;
	i.dmabuf_id = 7;
	return 0;
}

std::unique_ptr<VfioSource> make(FakeDevice *&dev, std::function<void(FakeDevice &)> setup = {},
                                 VfioHeadOptions head = {}, VfioSourceOptions options = {}) {
	auto d = std::make_unique<FakeDevice>();
	if (setup) setup(*d);
	dev = d.get();
	std::vector<std::unique_ptr<VfioDevice>> v;
	v.push_back(std::move(d));
	auto s = VfioSource::create(std::move(v), 60, {head}, options);
	EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error());
	return s.ok() ? std::move(*s) : nullptr;
}

} // namespace

TEST(VfioSource, ProbePicksDmabufThenRegion) {
	FakeDevice *d;
	auto s = make(d);
	EXPECT_EQ(s->transport(0), PlaneTransport::dmabuf);
	EXPECT_FALSE(s->needs_content_watch(0));
	auto r = make(d, [](FakeDevice &f) {
		f.dmabuf = false;
		f.region = true;
	});
	EXPECT_EQ(r->transport(0), PlaneTransport::region);
	EXPECT_FALSE(r->needs_content_watch(0)) << "the source tells region changes itself (damage), nothing hashes";
	EXPECT_EQ(r->poll_hz(), 60);
}

TEST(VfioSource, DeviceWithoutDisplayIsAClearError) {
	for (bool enotty : {true, false}) {
		auto d = std::make_unique<FakeDevice>();
		d->name_ = "0000:00:02.0";
		if (enotty)
			d->no_display = true;
		else
			d->dmabuf = d->region = false;
		std::vector<std::unique_ptr<VfioDevice>> v;
		v.push_back(std::move(d));
		auto s = VfioSource::create(std::move(v), 60);
		ASSERT_FALSE(s.ok());
		EXPECT_NE(s.error().find("0000:00:02.0"), std::string::npos) << s.error();
		EXPECT_NE(s.error().find(enotty ? "no display" : "neither"), std::string::npos) << s.error();
	}
}

TEST(VfioSource, QueryZeroesTheStructEveryTime) {
	FakeDevice *d;
	auto s = make(d);
	d->steady = fill_primary;
	for (int i = 0; i < 3; i++) ASSERT_TRUE(s->query(0, PlaneType::primary).ok());
	EXPECT_FALSE(d->saw_dirty_struct);
}

TEST(VfioSource, AnswerWithoutFillingIsADisabledPlane) {
	FakeDevice *d;
	auto s = make(d);
	d->steady = [](vfio_device_gfx_plane_info &) { return 0; }; // i915 GVT before the plane is ready
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(p->state, PlaneState::disabled);
}

TEST(VfioSource, EnabledPlaneFieldsAndSignedCursorPosition) {
	FakeDevice *d;
	auto s = make(d);
	d->steady = [](vfio_device_gfx_plane_info &i) {
		if (i.drm_plane_type == 1) return fill_primary(i);
		i.drm_format = DRM_FORMAT_ARGB8888;
		i.width = i.height = 64;
		i.stride = 256;
		i.size = 16384;
		i.x_pos = 0xFFFFFFFC; // -4: hanging off the left edge
		i.y_pos = 10;
		i.x_hot = 0xFFFFFFFF;
		i.y_hot = 0xFFFFFFFF;
		i.dmabuf_id = 9;
		return 0;
	};
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(p->state, PlaneState::enabled);
	EXPECT_EQ(p->width, 640u);
	EXPECT_EQ(p->stride, 2560u);
	EXPECT_EQ(p->buffer_id, 7u);
	EXPECT_EQ(p->offset, 0u);
	auto c = s->query(0, PlaneType::cursor);
	ASSERT_TRUE(c.ok());
	EXPECT_EQ(c->x_pos, -4);
	EXPECT_EQ(c->y_pos, 10);
	EXPECT_EQ(c->x_hot, kNoHotspot);
	EXPECT_EQ(c->buffer_id, 9u);
}

TEST(VfioSource, NoCursorPlaneIsUnsupportedNotAnError) {
	FakeDevice *d;
	auto s = make(d, [](FakeDevice &f) { f.cursor = false; });
	auto c = s->query(0, PlaneType::cursor);
	ASSERT_TRUE(c.ok());
	EXPECT_EQ(c->state, PlaneState::unsupported);
	EXPECT_EQ(d->queries, 0) << "an unsupported plane is not queried";
}

TEST(VfioSource, OneRetryOnTransientError) {
	FakeDevice *d;
	auto s = make(d);
	d->steady = fill_primary;
	d->next.push_back([](vfio_device_gfx_plane_info &) { return ENOMEM; }); // mbochs after a mode change
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok()) << p.error();
	EXPECT_EQ(p->state, PlaneState::enabled);
	EXPECT_EQ(d->queries, 2);

	d->next.push_back([](vfio_device_gfx_plane_info &) { return ENOMEM; });
	d->next.push_back([](vfio_device_gfx_plane_info &) { return ENOMEM; });
	auto q = s->query(0, PlaneType::primary);
	ASSERT_FALSE(q.ok()) << "two transient errors in a row are an error for this poll";
	EXPECT_NE(q.error().find("QUERY_GFX_PLANE"), std::string::npos);
	EXPECT_FALSE(s->lost(0));
}

TEST(VfioSource, DeviceGoneShowsNoSignalForGood) {
	FakeDevice *d;
	bool destroyed = false;
	auto s = make(d, [&](FakeDevice &f) { f.destroyed = &destroyed; });
	d->steady = [](vfio_device_gfx_plane_info &) { return ENODEV; };
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(p->state, PlaneState::disabled);
	EXPECT_TRUE(s->lost(0));
	EXPECT_FALSE(s->connected(0));
	EXPECT_TRUE(destroyed) << "a gone device is closed, never queried again";
	auto again = s->query(0, PlaneType::primary);
	ASSERT_TRUE(again.ok());
	EXPECT_EQ(again->state, PlaneState::disabled);
}

TEST(VfioSource, DmabufOpenedByIdOnlyWhenAsked) {
	FakeDevice *d;
	auto s = make(d);
	d->steady = fill_primary;
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(d->dmabuf_calls, 0) << "querying must not fetch a dma-buf";
	auto b = s->open_buffer(*p);
	ASSERT_TRUE(b.ok()) << b.error();
	EXPECT_EQ(d->dmabuf_calls, 1);
	EXPECT_EQ(d->last_dmabuf_id, 7u);
	EXPECT_EQ(b->kind, BufferKind::dmabuf);
	EXPECT_EQ(b->byte_size, 8192u);
}

namespace {

// A region device (mdpy): the primary plane in region 0, no cursor.
std::unique_ptr<VfioSource> make_region_source(FakeDevice *&d, std::function<void(FakeDevice &)> more = {}) {
	auto s = make(d, [&](FakeDevice &f) {
		f.dmabuf = false;
		f.region = true;
		f.cursor = false;
		f.regions = 3;
		f.make_region();
		if (more) more(f);
	});
	d->steady = [](vfio_device_gfx_plane_info &i) {
		fill_primary(i);
		i.region_index = 0; // shares the union with dmabuf_id
		return 0;
	};
	return s;
}

uint32_t pixel(const Mapping &m, uint32_t x, uint32_t y) {
	uint32_t v;
	std::memcpy(&v, m.data() + y * 2560 + x * 4, 4);
	return v;
}

std::vector<std::string> g_vfio_errors;
void capture_errors(log::Level level, const char *fmt, va_list args) {
	if (level != log::Level::error) return;
	char buf[512];
	std::vsnprintf(buf, sizeof buf, fmt, args);
	g_vfio_errors.emplace_back(buf);
}
struct CaptureErrors {
	CaptureErrors() {
		g_vfio_errors.clear();
		log::set_sink(capture_errors);
	}
	~CaptureErrors() { log::set_sink(nullptr); }
	size_t count(const std::string &part) const {
		return static_cast<size_t>(std::count_if(g_vfio_errors.begin(), g_vfio_errors.end(), [&](const std::string &e) {
			return e.find(part) != std::string::npos;
		}));
	}
};

} // namespace

TEST(VfioSource, RegionPlaneIsASnapshotOfThePlaneBytesAndChangesAreDamage) {
	FakeDevice *d;
	auto s = make_region_source(d);
	d->poke(0, 0x00112233);
	d->poke(479 * 2560 + 639 * 4, 0x00445566); // the plane's last pixel
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_NE(p->buffer_id, 0u) << "a region plane goes by an id of the source's, one per configuration";
	EXPECT_EQ(s->query(0, PlaneType::primary)->buffer_id, p->buffer_id) << "same configuration, same id";
	auto b = s->open_buffer(*p);
	ASSERT_TRUE(b.ok()) << b.error();
	EXPECT_EQ(b->kind, BufferKind::memfd) << "never a mapping of the region itself: a reset would revoke it";
	EXPECT_EQ(b->byte_size, p->size);
	EXPECT_EQ(d->dmabuf_calls, 0);
	auto view = Mapping::map(b->fd.get(), b->byte_size, PROT_READ);
	ASSERT_TRUE(view.ok()) << view.error();
	EXPECT_EQ(pixel(*view, 0, 0), 0x00112233u);
	EXPECT_EQ(pixel(*view, 639, 479), 0x00445566u);

	const uint64_t damage = s->damage_seq(0);
	ASSERT_TRUE(s->query(0, PlaneType::primary).ok());
	EXPECT_EQ(s->damage_seq(0), damage) << "nothing changed: no damage";
	d->poke(100 * 2560 + 10 * 4, 0x00abcdef);
	ASSERT_TRUE(s->query(0, PlaneType::primary).ok());
	EXPECT_EQ(s->damage_seq(0), damage + 1) << "the guest drew in place";
	EXPECT_EQ(pixel(*view, 10, 100), 0x00abcdefu) << "the import's memory holds the new pixels";
	// Bytes past the plane (stride x height) are never read: the work per poll is the plane's.
	d->poke(480 * 2560 + 4, 0x00ffffff);
	ASSERT_TRUE(s->query(0, PlaneType::primary).ok());
	EXPECT_EQ(s->damage_seq(0), damage + 1) << "a change outside the plane is no change";

	// Another configuration is another buffer: a new id, opened (and validated) again.
	d->steady = [](vfio_device_gfx_plane_info &i) {
		fill_primary(i);
		i.width = 320;
		return 0;
	};
	auto q = s->query(0, PlaneType::primary);
	ASSERT_TRUE(q.ok());
	EXPECT_NE(q->buffer_id, p->buffer_id);
	EXPECT_FALSE(s->open_buffer(*p).ok()) << "the old configuration's id is not opened any more";
}

TEST(VfioSource, RegionIndexIsCheckedAgainstTheDevice) {
	FakeDevice *d;
	auto s = make_region_source(d);
	d->steady = [](vfio_device_gfx_plane_info &i) {
		fill_primary(i);
		i.region_index = 7; // the device has 3
		return 0;
	};
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	auto b = s->open_buffer(*p);
	ASSERT_FALSE(b.ok());
	EXPECT_NE(b.error().find("region_index 7 is not a region of the device (it has 3)"), std::string::npos)
	    << b.error();
	EXPECT_EQ(d->plane_maps + d->plane_reads, 0) << "nothing read from a region the device does not have";

	// mdpy: its display is region 16 while it says it has 9 (VFIO_PCI_NUM_REGIONS). A region past
	// the count that the device describes is used (logged once); one it does not is refused above.
	FakeDevice *m;
	auto u = make_region_source(m, [](FakeDevice &f) {
		f.regions = 9;
		f.plane_region = 16;
	});
	m->steady = [](vfio_device_gfx_plane_info &i) {
		fill_primary(i);
		i.region_index = 16;
		return 0;
	};
	auto pm = u->query(0, PlaneType::primary);
	ASSERT_TRUE(pm.ok());
	auto bm = u->open_buffer(*pm);
	ASSERT_TRUE(bm.ok()) << bm.error();
	EXPECT_EQ(m->plane_maps, 1);

	// A device that cannot tell how many: the region's own info decides.
	FakeDevice *e;
	auto t = make_region_source(e, [](FakeDevice &f) { f.regions.reset(); });
	e->steady = d->steady;
	auto pe = t->query(0, PlaneType::primary);
	ASSERT_TRUE(pe.ok());
	auto be = t->open_buffer(*pe);
	ASSERT_FALSE(be.ok());
	EXPECT_NE(be.error().find("no region 7"), std::string::npos) << be.error();
}

TEST(VfioSource, RegionSmallerThanThePlaneIsRefused) {
	FakeDevice *d;
	auto s = make_region_source(d, [](FakeDevice &f) { f.region_size = 1 << 20; }); // the plane is 1.2 MB
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	auto b = s->open_buffer(*p);
	ASSERT_FALSE(b.ok());
	EXPECT_NE(b.error().find("larger than region 0"), std::string::npos) << b.error();
	EXPECT_EQ(d->plane_maps + d->plane_reads, 0);
}

TEST(VfioSource, RegionNeitherMappableNorReadableIsRefused) {
	FakeDevice *d;
	auto s = make_region_source(d, [](FakeDevice &f) { f.region_mappable = f.region_readable = false; });
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	auto b = s->open_buffer(*p);
	ASSERT_FALSE(b.ok());
	EXPECT_NE(b.error().find("neither mapped nor read"), std::string::npos) << b.error();
}

namespace {

// Keeps the snapshot's fd and a read-only view of it, as the real import does.
class SnapshotImport : public core::ImportedBuffer {
public:
	explicit SnapshotImport(GuestBuffer b) : buffer_(std::move(b)) {
		auto m = Mapping::map(buffer_.fd.get(), buffer_.byte_size, PROT_READ);
		EXPECT_TRUE(m.ok());
		if (m) view_ = std::move(*m);
	}
	const uint8_t *cpu_data() const override { return view_.data(); }
	const char *path() const override { return "host"; }
	GuestBuffer buffer_;
	Mapping view_;
};

// A revoked mapping (or a failing read) through the tracker: no crash, the last frame kept, the
// cause logged once for the whole failing run, and the head shows new content once reads work.
void revoked_region_keeps_the_last_frame(bool mappable) {
	CaptureErrors errors;
	FakeDevice *d;
	auto s = make_region_source(d, [&](FakeDevice &f) { f.region_mappable = mappable; });
	d->poke(0, 0x00010203);
	core::HeadTracker tracker(
	    0, *s,
	    [](const PlaneInfo &, GuestBuffer b) -> Result<std::shared_ptr<core::ImportedBuffer>> {
		    return std::shared_ptr<core::ImportedBuffer>(std::make_shared<SnapshotImport>(std::move(b)));
	    },
	    core::TrackerOptions{});
	ASSERT_TRUE(tracker.poll().frame);
	ASSERT_TRUE(tracker.primary().visible());
	const uint8_t *shown = tracker.primary().buffer->cpu_data();
	auto at0 = [&] {
		uint32_t v;
		std::memcpy(&v, shown, 4);
		return v;
	};
	EXPECT_EQ(at0(), 0x00010203u);

	d->poke(0, 0x00040506);
	EXPECT_TRUE(tracker.poll().frame) << "drawn in place: a new frame";
	EXPECT_EQ(at0(), 0x00040506u);

	if (mappable)
		d->revoke(); // the device reset: the mapping now raises SIGBUS
	else
		d->plane_read_error = EFAULT;
	for (int i = 0; i < 5; i++) {
		const core::Changes c = tracker.poll();
		EXPECT_FALSE(c.any()) << "a failing read is no new frame";
	}
	EXPECT_TRUE(tracker.primary().visible()) << "the head keeps its last frame";
	EXPECT_EQ(at0(), 0x00040506u) << "the last good pixels";
	EXPECT_GE(s->region_read_failures(0), 5u);
	EXPECT_EQ(errors.count("reading its primary plane from region 0 failed"), 1u) << "logged once, not per poll";
	EXPECT_EQ(tracker.stats().rejected, 0u);

	// The device is back: a mapping made again (or a read) works, and new content shows.
	if (mappable)
		d->restore();
	else
		d->plane_read_error = 0;
	d->poke(0, 0x00070809);
	EXPECT_TRUE(tracker.poll().frame);
	EXPECT_EQ(at0(), 0x00070809u);
	EXPECT_EQ(errors.count("reading its primary plane"), 1u);
}

} // namespace

TEST(VfioSource, RevokedRegionMappingKeepsTheLastFrameAndIsLoggedOnce) { revoked_region_keeps_the_last_frame(true); }

TEST(VfioSource, FailingRegionReadKeepsTheLastFrameAndIsLoggedOnce) { revoked_region_keeps_the_last_frame(false); }

TEST(VfioSource, SpecsAreParsed) {
	auto bad = open_vfio_source({"vfio-fd:abc"}, 60);
	ASSERT_FALSE(bad.ok());
	EXPECT_NE(bad.error().find("vfio-fd:<fd number>"), std::string::npos);
	auto mixed = open_vfio_source({"sim"}, 60);
	ASSERT_FALSE(mixed.ok());
	auto notdev = open_vfio_source({"vfio:not-a-device"}, 60);
	ASSERT_FALSE(notdev.ok());
	EXPECT_NE(notdev.error().find("neither an mdev UUID"), std::string::npos) << notdev.error();
	auto missing = open_vfio_source({"vfio:83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"}, 60);
	ASSERT_FALSE(missing.ok());
	EXPECT_NE(missing.error().find("/sys/bus/mdev/devices/"), std::string::npos) << missing.error();
	auto pci = resolve_vfio_device("00:02.0", "/nonexistent");
	ASSERT_FALSE(pci.ok());
	EXPECT_NE(pci.error().find("/nonexistent/bus/pci/devices/0000:00:02.0"), std::string::npos) << pci.error();
	int fds[2];
	ASSERT_EQ(pipe(fds), 0);
	auto pipefd = open_vfio_source({"vfio-fd:" + std::to_string(fds[0])}, 60);
	ASSERT_FALSE(pipefd.ok());
	EXPECT_NE(pipefd.error().find("not a VFIO device"), std::string::npos);
	close(fds[0]);
	close(fds[1]);
}

TEST(VfioSource, RemovalReleasesTheDeviceAndDisconnectsTheHead) {
	char dir[] = "/tmp/vscanout-fake-mdev.XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	const std::string remove_attr = std::string(dir) + "/remove";
	std::ofstream(remove_attr) << "";
	bool destroyed = false;
	FakeDevice *d;
	auto s = make(d, [&](FakeDevice &f) {
		f.sysfs_ = dir;
		f.destroyed = &destroyed;
	});
	d->steady = fill_primary;
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(p->state, PlaneState::enabled);
	EXPECT_TRUE(s->connected(0));

	// The kernel takes the attribute away when removal starts, then waits for our fds.
	ASSERT_EQ(unlink(remove_attr.c_str()), 0);
	auto q = s->query(0, PlaneType::primary);
	ASSERT_TRUE(q.ok());
	EXPECT_EQ(q->state, PlaneState::disabled);
	EXPECT_FALSE(s->connected(0));
	EXPECT_TRUE(destroyed) << "the device (and its fds) must be released so the removal can finish";
	EXPECT_FALSE(s->open_buffer(*p).ok());
	rmdir(dir);
}

TEST(VfioSource, DriverIgnoringThePlaneTypeHasNoCursor) {
	FakeDevice *d;
	auto s = make(d, [](FakeDevice &f) {
		f.dmabuf = false;
		f.region = true;
		f.cursor = true;                               // the probe says yes...
		f.steady = [](vfio_device_gfx_plane_info &i) { // ...but every answer is the primary (mdpy)
			fill_primary(i);
			i.region_index = 16;
			return 0;
		};
	});
	auto c = s->query(0, PlaneType::cursor);
	ASSERT_TRUE(c.ok());
	EXPECT_EQ(c->state, PlaneState::unsupported);
}

TEST(VfioSource, HandedOverFdMayNameItsDevice) {
	int fds[2];
	ASSERT_EQ(pipe(fds), 0);
	auto bad = open_vfio_source({"vfio-fd:" + std::to_string(fds[0]) + ":not-a-device"}, 60);
	ASSERT_FALSE(bad.ok());
	EXPECT_NE(bad.error().find("neither an mdev UUID"), std::string::npos) << bad.error();
	auto junk = open_vfio_source({"vfio-fd:" + std::to_string(fds[0]) + "x"}, 60);
	ASSERT_FALSE(junk.ok());
	close(fds[0]);
	close(fds[1]);
}

// --- EDID: the guest's preferred mode follows the window ----------------------------------------

namespace {

void with_edid(FakeDevice &f) { f.edid_region = true; }

VfioSourceOptions quick() {
	VfioSourceOptions o;
	o.edid_settle_ms = 30;
	o.edid_link_down_ms = 10;
	return o;
}

// Dispatches the source's EDID timer until no write and no link-up is left to come; false when
// that takes longer than timeout_ms.
bool settle(VfioSource &s, int timeout_ms = 2000) {
	const int fd = s.edid_timer_fd();
	if (fd < 0) return false;
	const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (s.edid_busy()) {
		const auto left =
		    std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
		if (left <= 0) return false;
		pollfd p{fd, POLLIN, 0};
		if (::poll(&p, 1, static_cast<int>(left)) == 1) s.dispatch(fd);
	}
	return true;
}

std::string preferred_of(const std::vector<uint8_t> &edid) {
	const uint32_t w = edid[56] | ((edid[58] >> 4) << 8), h = edid[59] | ((edid[61] >> 4) << 8);
	return std::to_string(w) + "x" + std::to_string(h);
}

} // namespace

TEST(VfioEdid, AResizeBurstWritesOnceAfterItSettles) {
	FakeDevice *d;
	auto s = make(d, with_edid, {}, quick());
	ASSERT_TRUE(s->has_edid(0));
	ASSERT_EQ(s->watch_fds(), std::vector<int>{s->edid_timer_fd()});
	EXPECT_TRUE(d->edid_ops.empty()) << "without a size the EDID is left as the device has it";
	for (uint32_t i = 0; i < 20; i++) s->window_resized(0, 800 + 24 * i, 600 + 10 * i); // a drag
	s->window_resized(0, 1280, 800);
	EXPECT_TRUE(d->edid_ops.empty()) << "nothing is written while the size still moves";
	ASSERT_TRUE(settle(*s));
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size", "up"}))
	    << "the <linux/vfio.h> protocol: link down, blob and size, link up";
	EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_UP});
	EXPECT_EQ(d->edid_regs.edid_size, 128u);
	EXPECT_EQ(preferred_of(d->written_edid()), "1280x800");
	EXPECT_EQ(s->edid_width(0), 1280u);
	EXPECT_EQ(s->edid_height(0), 800u);
	// Nothing more pending: the timer is disarmed.
	pollfd p{s->edid_timer_fd(), POLLIN, 0};
	EXPECT_EQ(::poll(&p, 1, 100), 0);
	EXPECT_EQ(d->blob_writes(), 1);
}

TEST(VfioEdid, TheLinkStaysDownAWhileAroundAWrite) {
	FakeDevice *d;
	VfioSourceOptions o = quick();
	o.edid_link_down_ms = 80;
	auto s = make(d, with_edid, {}, o);
	s->window_resized(0, 1024, 768);
	const int fd = s->edid_timer_fd();
	pollfd p{fd, POLLIN, 0};
	ASSERT_EQ(::poll(&p, 1, 2000), 1);
	const auto written = std::chrono::steady_clock::now();
	s->dispatch(fd);
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size"}));
	EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_DOWN}) << "the guest can see it down";
	EXPECT_TRUE(s->edid_busy());
	ASSERT_EQ(::poll(&p, 1, 2000), 1);
	s->dispatch(fd);
	EXPECT_GE(std::chrono::steady_clock::now() - written, std::chrono::milliseconds(70));
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size", "up"}));
	EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_UP});
	EXPECT_FALSE(s->edid_busy());
}

TEST(VfioEdid, ASourceGoingAwayLeavesTheLinkUp) {
	FakeDevice *d;
	VfioHeadOptions sized;
	sized.width = 1280;
	sized.height = 720;
	VfioSourceOptions o = quick();
	o.edid_link_down_ms = 10000;
	std::vector<std::string> ops;
	auto s = make(
	    d,
	    [&](FakeDevice &f) {
		    f.edid_region = true;
		    f.edid_ops_at_exit = &ops;
	    },
	    sized, o);
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size"})) << "size= is written at start";
	EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_DOWN});
	s.reset(); // vscanout exits within the link-down interval
	EXPECT_EQ(ops, (std::vector<std::string>{"down", "blob", "size", "up"})) << "the guest is not left unplugged";
}

TEST(VfioEdid, TheWrittenBlobParsesWithThePreferredModeAskedFor) {
	if (!test::have_edid_decode()) GTEST_SKIP() << "edid-decode is not installed (scripts/setup.sh installs it)";
	FakeDevice *d;
	auto s = make(d, with_edid, {}, quick());
	s->window_resized(0, 1366, 768);
	ASSERT_TRUE(settle(*s));
	const std::string report = test::edid_decode(d->written_edid());
	EXPECT_NE(report.find("EDID conformity: PASS"), std::string::npos) << report;
	EXPECT_EQ(report.find("Warnings:"), std::string::npos) << report;
	EXPECT_EQ(test::edid_decode_preferred(report), "1366x768") << report;
}

TEST(VfioEdid, TheSizeIsClampedToTheDevicesLargestMode) {
	FakeDevice *d;
	auto s = make(
	    d,
	    [](FakeDevice &f) {
		    f.edid_region = true;
		    f.edid_regs.max_xres = 1920; // mbochs "medium"
		    f.edid_regs.max_yres = 1440;
	    },
	    {}, quick());
	s->window_resized(0, 2560, 1600);
	ASSERT_TRUE(settle(*s));
	EXPECT_EQ(preferred_of(d->written_edid()), "1920x1440");
	s->window_resized(0, 1000, 2000);
	ASSERT_TRUE(settle(*s));
	EXPECT_EQ(preferred_of(d->written_edid()), "1000x1440");
	// No limit (max 0): anything an EDID carries.
	auto u = make(d, with_edid, {}, quick());
	u->window_resized(0, 3840, 2160);
	ASSERT_TRUE(settle(*u));
	EXPECT_EQ(preferred_of(d->written_edid()), "3840x2160");
}

TEST(VfioEdid, TheSameSizeAgainIsNotWrittenAgain) {
	FakeDevice *d;
	auto s = make(d, with_edid, {}, quick());
	s->window_resized(0, 1024, 768);
	ASSERT_TRUE(settle(*s));
	s->window_resized(0, 1100, 800);
	s->window_resized(0, 1024, 768); // dragged back where it was
	ASSERT_TRUE(settle(*s));
	EXPECT_EQ(d->blob_writes(), 1);
}

TEST(VfioEdid, ADeviceWithoutTheRegionIsLeftAlone) {
	FakeDevice *d;
	auto s = make(d, {}, {}, quick());
	EXPECT_FALSE(s->has_edid(0));
	EXPECT_EQ(d->find_region_calls, 1);
	EXPECT_TRUE(s->watch_fds().empty()) << "no EDID, no timer";
	s->window_resized(0, 1280, 720);
	EXPECT_TRUE(d->edid_ops.empty());
}

TEST(VfioEdid, EdidOffWritesNothing) {
	FakeDevice *d;
	VfioHeadOptions off;
	off.edid = false;
	off.width = 1280;
	off.height = 720;
	auto s = make(d, with_edid, off, quick());
	EXPECT_FALSE(s->has_edid(0));
	EXPECT_EQ(d->find_region_calls, 0) << "edid=off: the region is not even looked up";
	s->window_resized(0, 1280, 720);
	EXPECT_TRUE(d->edid_ops.empty());
	EXPECT_TRUE(s->watch_fds().empty());

	VfioSourceOptions no_edid = quick();
	no_edid.edid = false; // --no-edid
	auto t = make(d, with_edid, {}, no_edid);
	EXPECT_FALSE(t->has_edid(0));
	t->window_resized(0, 1280, 720);
	EXPECT_TRUE(d->edid_ops.empty());
}

TEST(VfioEdid, ASizeInTheSpecIsWrittenAtStart) {
	FakeDevice *d;
	VfioHeadOptions sized;
	sized.width = 1600;
	sized.height = 900;
	auto s = make(d, with_edid, sized, quick());
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size"})) << "no settling at start";
	ASSERT_TRUE(settle(*s));
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size", "up"}));
	EXPECT_EQ(preferred_of(d->written_edid()), "1600x900");
}

TEST(VfioEdid, ARegionTooSmallOrFailingIsGivenUp) {
	FakeDevice *d;
	auto s = make(
	    d,
	    [](FakeDevice &f) {
		    f.edid_region = true;
		    f.edid_regs.edid_max_size = 64;
	    },
	    {}, quick());
	EXPECT_FALSE(s->has_edid(0));
	s->window_resized(0, 1280, 720);
	EXPECT_TRUE(d->edid_ops.empty());

	auto t = make(
	    d,
	    [](FakeDevice &f) {
		    f.edid_region = true;
		    f.edid_write_error = EACCES;
	    },
	    {}, quick());
	t->window_resized(0, 1280, 720);
	ASSERT_TRUE(settle(*t));
	EXPECT_FALSE(t->has_edid(0)) << "a failed write turns EDID updates off for the head";
	EXPECT_FALSE(t->lost(0));
	t->window_resized(0, 1024, 768);
	pollfd p{t->edid_timer_fd(), POLLIN, 0};
	EXPECT_EQ(::poll(&p, 1, 100), 0) << "nothing armed for a head without EDID";
}

// Found by fuzz/edid_fuzz.cpp: a write that failed after the link went down (the blob refused
// here) turned EDID updates off and left the link down: the guest saw its monitor unplugged for
// good. The link is now brought back up; a device that is gone is not written to.
TEST(VfioEdid, AFailedWriteDoesNotLeaveTheLinkDown) {
	for (const int error : {EINVAL, EAGAIN}) {
		FakeDevice *d;
		auto s = make(
		    d,
		    [&](FakeDevice &f) {
			    f.edid_region = true;
			    f.blob_write_error = error;
		    },
		    {}, quick());
		s->window_resized(0, 1280, 720);
		ASSERT_TRUE(settle(*s));
		EXPECT_FALSE(s->has_edid(0));
		EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "up"})) << std::strerror(error);
		EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_UP});
	}
	// The last write's link-up still to come when the next write fails: up all the same.
	FakeDevice *d;
	VfioSourceOptions o = quick();
	o.edid_link_down_ms = 10000;
	VfioHeadOptions sized;
	sized.width = 1280;
	sized.height = 720;
	auto s = make(d, with_edid, sized, o);
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size"}));
	d->blob_write_error = EINVAL;
	s->window_resized(0, 1024, 768);
	const int fd = s->edid_timer_fd();
	pollfd p{fd, POLLIN, 0};
	ASSERT_EQ(::poll(&p, 1, 2000), 1);
	s->dispatch(fd);
	EXPECT_EQ(d->edid_ops, (std::vector<std::string>{"down", "blob", "size", "down", "up"}));
	EXPECT_EQ(d->edid_regs.link_state, uint32_t{VFIO_DEVICE_GFX_LINK_STATE_UP});
	EXPECT_FALSE(s->edid_busy());
}

TEST(VfioEdid, ABlobOffsetOnTheRegistersIsGivenUp) {
	for (uint32_t offset : {0u, 8u, uint32_t{sizeof(vfio_region_gfx_edid)} - 1}) {
		FakeDevice *d;
		auto s = make(
		    d,
		    [&](FakeDevice &f) {
			    f.edid_region = true;
			    f.edid_regs.edid_offset = offset;
		    },
		    {}, quick());
		EXPECT_FALSE(s->has_edid(0)) << offset;
		s->window_resized(0, 1280, 720);
		EXPECT_TRUE(d->edid_ops.empty()) << offset;
	}
	FakeDevice *d;
	auto s = make(
	    d, [](FakeDevice &f) { f.edid_region = true, f.edid_regs.edid_offset = sizeof(vfio_region_gfx_edid); }, {},
	    quick());
	EXPECT_TRUE(s->has_edid(0)) << "the blob right after the registers is fine";
}

TEST(VfioEdid, SpecOptionsAreParsed) {
	auto a = parse_vfio_spec("vfio:83b8f4f2-509f-382f-3c1e-e6bfe0fa1001,size=1920x1080");
	ASSERT_TRUE(a.ok()) << a.error();
	EXPECT_EQ(a->device, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
	EXPECT_FALSE(a->by_fd);
	EXPECT_EQ(a->options.width, 1920u);
	EXPECT_EQ(a->options.height, 1080u);
	EXPECT_TRUE(a->options.edid);
	auto b = parse_vfio_spec("vfio-fd:5:0000:00:02.0,edid=off,size=800x600");
	ASSERT_TRUE(b.ok()) << b.error();
	EXPECT_TRUE(b->by_fd);
	EXPECT_EQ(b->fd, 5);
	EXPECT_EQ(b->device, "0000:00:02.0");
	EXPECT_FALSE(b->options.edid);
	EXPECT_EQ(b->options.width, 800u);
	auto c = parse_vfio_spec("vfio:0000:00:02.0");
	ASSERT_TRUE(c.ok());
	EXPECT_EQ(c->options.width, 0u);
	for (const char *bad : {"vfio:x,size=1920", "vfio:x,size=x1080", "vfio:x,size=0x100", "vfio:x,size=-5x100",
	                        "vfio:x,size=100x100x", "vfio:x,edid=maybe", "vfio:x,colour=blue", "vfio-fd:,size=1x1"}) {
		auto r = parse_vfio_spec(bad);
		EXPECT_FALSE(r.ok()) << bad;
	}
	auto unknown = parse_vfio_spec("vfio:x,colour=blue");
	ASSERT_FALSE(unknown.ok());
	EXPECT_NE(unknown.error().find("size=WxH"), std::string::npos) << unknown.error();
}

TEST(VfioEdid, RegionCapabilityChainIsWalkedSafely) {
	// As mbochs answers: the bare struct, then one type capability at offset 32.
	auto answer = [](uint32_t flags, uint32_t cap_offset, size_t size) {
		std::vector<uint8_t> b(size, 0);
		vfio_region_info ri{};
		ri.argsz = static_cast<uint32_t>(size);
		ri.flags = flags;
		ri.cap_offset = cap_offset;
		std::memcpy(b.data(), &ri, sizeof ri);
		return b;
	};
	auto put_cap = [](std::vector<uint8_t> &b, size_t at, uint16_t id, uint32_t next, uint32_t type, uint32_t sub) {
		vfio_region_info_cap_type c{};
		c.header.id = id;
		c.header.version = 1;
		c.header.next = next;
		c.type = type;
		c.subtype = sub;
		std::memcpy(b.data() + at, &c, sizeof c);
	};
	const uint32_t gfx = VFIO_REGION_TYPE_GFX, edid = VFIO_REGION_SUBTYPE_GFX_EDID;
	auto mbochs = answer(VFIO_REGION_INFO_FLAG_CAPS, 32, 48);
	put_cap(mbochs, 32, VFIO_REGION_INFO_CAP_TYPE, 0, gfx, edid);
	EXPECT_TRUE(region_has_type(mbochs, gfx, edid));
	EXPECT_FALSE(region_has_type(mbochs, gfx, 2));
	auto no_caps_flag = mbochs;
	reinterpret_cast<vfio_region_info *>(no_caps_flag.data())->flags = 0;
	EXPECT_FALSE(region_has_type(no_caps_flag, gfx, edid));
	// Two entries: another capability first, then the type.
	auto chain = answer(VFIO_REGION_INFO_FLAG_CAPS, 32, 64);
	put_cap(chain, 32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 48, 0, 0);
	put_cap(chain, 48, VFIO_REGION_INFO_CAP_TYPE, 0, gfx, edid);
	EXPECT_TRUE(region_has_type(chain, gfx, edid));
	// A chain pointing back to itself, one past the end, one into the struct: no match, no hang.
	auto loop = answer(VFIO_REGION_INFO_FLAG_CAPS, 32, 64);
	put_cap(loop, 32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 32, 0, 0);
	EXPECT_FALSE(region_has_type(loop, gfx, edid));
	auto past = answer(VFIO_REGION_INFO_FLAG_CAPS, 40, 48);
	EXPECT_FALSE(region_has_type(past, gfx, edid));
	auto inside = answer(VFIO_REGION_INFO_FLAG_CAPS, 8, 48);
	EXPECT_FALSE(region_has_type(inside, gfx, edid));
	EXPECT_FALSE(region_has_type(std::vector<uint8_t>(10, 0xff), gfx, edid));
}
