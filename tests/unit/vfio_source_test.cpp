// The VFIO source against a scripted fake device: every driver quirk of docs/design.md, "VFIO quirks".
#include <drm_fourcc.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <deque>
#include <functional>

#include "base/fd_util.hpp"
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
	Result<RegionInfo> region_info(uint32_t index) override {
		if (index != 0) return fail("no region " + std::to_string(index));
		return RegionInfo{0x10000000000ull, 1 << 20, true};
	}
	Result<UniqueFd> dup_fd() override {
		auto fd = make_memfd("fake-device", 4096);
		if (!fd) return fd.take_error();
		return std::move(*fd);
	}
	const std::string &name() const override { return name_; }
	const std::string &sysfs_path() const override { return sysfs_; }
	std::string name_ = "fake";
	std::string sysfs_;
	bool *destroyed = nullptr;
	~FakeDevice() override {
		if (destroyed) *destroyed = true;
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

std::unique_ptr<VfioSource> make(FakeDevice *&dev, std::function<void(FakeDevice &)> setup = {}) {
	auto d = std::make_unique<FakeDevice>();
	if (setup) setup(*d);
	dev = d.get();
	std::vector<std::unique_ptr<VfioDevice>> v;
	v.push_back(std::move(d));
	auto s = VfioSource::create(std::move(v), 60);
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
	EXPECT_TRUE(r->needs_content_watch(0)) << "region planes have no id: their content must be hashed";
	EXPECT_EQ(r->poll_hz(), 60);
}

TEST(VfioSource, DeviceWithoutDisplayIsAClearError) {
	for (bool enotty : {true, false}) {
		auto d = std::make_unique<FakeDevice>();
		d->name_ = "0000:00:02.0";
		if (enotty) d->no_display = true;
		else d->dmabuf = d->region = false;
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

TEST(VfioSource, RegionPlaneMapsTheRegionAtItsOffset) {
	FakeDevice *d;
	auto s = make(d, [](FakeDevice &f) {
		f.dmabuf = false;
		f.region = true;
		f.cursor = false;
	});
	d->steady = [](vfio_device_gfx_plane_info &i) {
		fill_primary(i);
		i.region_index = 0; // shares the union with dmabuf_id
		return 0;
	};
	auto p = s->query(0, PlaneType::primary);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(p->buffer_id, 0u) << "region planes have no id";
	auto b = s->open_buffer(*p);
	ASSERT_TRUE(b.ok()) << b.error();
	EXPECT_EQ(b->kind, BufferKind::region);
	EXPECT_EQ(b->map_offset, 0x10000000000ull);
	EXPECT_EQ(b->byte_size, 1u << 20);
	EXPECT_EQ(d->dmabuf_calls, 0);
}

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
		f.cursor = true; // the probe says yes...
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
