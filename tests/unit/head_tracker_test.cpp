// HeadTracker against a scripted source: generations, the import cache keyed by id and
// configuration, rejection of bad planes (once per bad generation), cursor changes, and that
// nothing leaks descriptors or imports.
#include <drm_fourcc.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "base/mapping.hpp"
#include "core/head_tracker.hpp"
#include "vgpu/source.hpp"

namespace vscanout::core {
namespace {

using vgpu::GuestBuffer;
using vgpu::kNoHotspot;
using vgpu::PlaneInfo;
using vgpu::PlaneState;
using vgpu::PlaneType;

constexpr uint32_t kHead = 3;

// A source whose planes the test sets directly.
class FakeSource : public vgpu::Source {
public:
	std::map<std::pair<uint32_t, PlaneType>, PlaneInfo> planes; // missing: disabled
	std::optional<uint64_t> byte_size;                          // unset: offset + size of the plane
	bool fail_query = false;
	bool fail_open = false;
	uint64_t damage = 0;
	int open_calls = 0;
	bool gone = false; // connected() answers false: the device went away for good
	// Buffer ids handed out as "dma-bufs" whose write fence is still in flight: a pipe's read
	// end stands in (read_fence() falls back to polling the fd itself, which turns readable
	// when the test writes to the pipe: the fence signals).
	std::map<uint64_t, int> fenced;

	void set(const PlaneInfo &p) { planes[{p.head_id, p.type}] = p; }
	void remove(PlaneType type) { planes.erase({kHead, type}); }

	std::string name() const override { return "fake"; }
	std::vector<uint32_t> heads() const override { return {kHead}; }
	bool connected(uint32_t) const override { return !gone; }

	Result<PlaneInfo> query(uint32_t head, PlaneType type) override {
		if (fail_query) return fail("fake query failure");
		auto it = planes.find({head, type});
		if (it != planes.end()) return it->second;
		PlaneInfo p;
		p.head_id = head;
		p.type = type;
		p.state = PlaneState::disabled;
		return p;
	}

	Result<GuestBuffer> open_buffer(const PlaneInfo &plane) override {
		open_calls++;
		if (fail_open) return fail("fake open failure");
		const uint64_t bytes = byte_size ? *byte_size : plane.offset + plane.size;
		if (auto it = fenced.find(plane.buffer_id); it != fenced.end()) {
			GuestBuffer b;
			b.fd = UniqueFd(::fcntl(it->second, F_DUPFD_CLOEXEC, 0));
			b.kind = vgpu::BufferKind::dmabuf;
			b.byte_size = bytes;
			return b;
		}
		auto fd = make_memfd("vscanout-tracker-test", bytes);
		if (!fd) return fd.take_error();
		GuestBuffer b;
		b.fd = std::move(*fd);
		b.kind = vgpu::BufferKind::memfd;
		b.byte_size = bytes;
		return b;
	}

	uint64_t damage_seq(uint32_t head) const override { return head == kHead ? damage : 0; }

	// Rows by damage count (unset: the source cannot tell, like VFIO and sim); the tracker's
	// questions are kept.
	std::map<uint64_t, vgpu::RowSpan> damaged_rows;
	bool tells_rows = false;
	std::vector<uint64_t> rows_asked;
	std::optional<vgpu::RowSpan> damage_rows(uint32_t, uint64_t since) override {
		rows_asked.push_back(since);
		if (!tells_rows) return std::nullopt;
		vgpu::RowSpan out;
		for (const auto &[seq, r] : damaged_rows)
			if (seq > since)
				out = out.empty() ? r : vgpu::RowSpan{std::min(out.first, r.first), std::max(out.end, r.end)};
		return out;
	}
};

struct ImportCounters {
	int live = 0;
	int created = 0;
	int content_changed = 0;
	std::vector<std::optional<vgpu::RowSpan>> rows; // what each content_changed was told
};

// Keeps the guest buffer (so its fd stays open while cached) and, when asked, a mapping of it.
class FakeImport : public ImportedBuffer {
public:
	FakeImport(const PlaneInfo &plane, GuestBuffer buffer, ImportCounters &counters, bool map)
	    : plane_(plane), buffer_(std::move(buffer)), counters_(counters) {
		counters_.live++;
		counters_.created++;
		if (map) {
			auto m = Mapping::map(buffer_.fd.get(), buffer_.byte_size, PROT_READ | PROT_WRITE);
			EXPECT_TRUE(m.ok()) << m.error();
			if (m) map_ = std::move(*m);
		}
	}
	~FakeImport() override { counters_.live--; }

	const uint8_t *cpu_data() const override { return map_ ? map_.data() : nullptr; }
	const char *path() const override { return "host"; }
	void content_changed(const std::optional<vgpu::RowSpan> &rows) override {
		counters_.content_changed++;
		counters_.rows.push_back(rows);
	}
	int dmabuf_fd() const override { return buffer_.kind == vgpu::BufferKind::dmabuf ? buffer_.fd.get() : -1; }

	uint8_t *pixels() { return map_.data(); }
	const PlaneInfo &plane() const { return plane_; }
	int fd() const { return buffer_.fd.get(); }

private:
	PlaneInfo plane_;
	GuestBuffer buffer_;
	ImportCounters &counters_;
	Mapping map_;
};

// Errors logged by the tracker, so "logged once" can be checked.
std::vector<std::string> g_errors;

void capture_sink(log::Level level, const char *fmt, va_list args) {
	if (level != log::Level::error) return;
	char buf[512];
	std::vsnprintf(buf, sizeof buf, fmt, args);
	g_errors.emplace_back(buf);
}

PlaneInfo primary(uint64_t id, uint32_t width = 64, uint32_t height = 48) {
	PlaneInfo p;
	p.head_id = kHead;
	p.type = PlaneType::primary;
	p.state = PlaneState::enabled;
	p.drm_format = DRM_FORMAT_XRGB8888;
	p.width = width;
	p.height = height;
	p.stride = width * 4;
	p.size = static_cast<uint32_t>(align_up(uint64_t{p.stride} * height, 4096));
	p.buffer_id = id;
	return p;
}

PlaneInfo cursor(uint64_t id, int32_t x, int32_t y) {
	PlaneInfo p;
	p.head_id = kHead;
	p.type = PlaneType::cursor;
	p.state = PlaneState::enabled;
	p.drm_format = DRM_FORMAT_ARGB8888;
	p.width = 64;
	p.height = 64;
	p.stride = 256;
	p.size = 256 * 64;
	p.x_pos = x;
	p.y_pos = y;
	p.x_hot = 2;
	p.y_hot = 3;
	p.buffer_id = id;
	return p;
}

std::string describe(const Changes &c) {
	return std::string("frame=") + (c.frame ? "1" : "0") + " mode=" + (c.mode ? "1" : "0") +
	       " cursor_image=" + (c.cursor_image ? "1" : "0") + " cursor_position=" + (c.cursor_position ? "1" : "0");
}

class HeadTrackerTest : public ::testing::Test {
protected:
	void SetUp() override {
		g_errors.clear();
		log::set_sink(capture_sink);
		make_tracker(TrackerOptions{});
	}
	void TearDown() override {
		tracker.reset();
		log::set_sink(nullptr);
		EXPECT_EQ(counters.live, 0) << "imports outlived their tracker";
	}

	void make_tracker(TrackerOptions options) {
		tracker.reset();
		tracker = std::make_unique<HeadTracker>(
		    kHead, source,
		    [this](const PlaneInfo &p, GuestBuffer b) -> Result<std::shared_ptr<ImportedBuffer>> {
			    importer_calls++;
			    if (fail_import) return fail("fake import failure");
			    std::shared_ptr<ImportedBuffer> imp =
			        std::make_shared<FakeImport>(p, std::move(b), counters, map_imports);
			    return imp;
		    },
		    options);
	}

	HeadTracker &t() { return *tracker; }
	const FakeImport *shown_primary() const {
		return dynamic_cast<const FakeImport *>(tracker->primary().buffer.get());
	}
	const FakeImport *shown_cursor() const { return dynamic_cast<const FakeImport *>(tracker->cursor().buffer.get()); }

	FakeSource source;
	ImportCounters counters;
	bool fail_import = false;
	bool map_imports = false;
	int importer_calls = 0;
	std::unique_ptr<HeadTracker> tracker;
};

TEST_F(HeadTrackerTest, NothingEnabledIsNoChange) {
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), 0u);
	EXPECT_FALSE(t().primary().visible());
	EXPECT_FALSE(t().cursor().visible());
	EXPECT_EQ(source.open_calls, 0);
	EXPECT_EQ(t().head(), kHead);
	EXPECT_EQ(t().stats().head, kHead);
}

TEST_F(HeadTrackerTest, FirstGoodPrimaryIsAFrameAndAMode) {
	source.set(primary(10, 64, 48));
	const Changes c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.mode);
	EXPECT_FALSE(c.cursor_image);
	EXPECT_FALSE(c.cursor_position);
	EXPECT_EQ(t().generation(), 1u);
	EXPECT_EQ(t().stats().imports, 1u);
	EXPECT_EQ(t().stats().buffer_opens, 1u);
	EXPECT_EQ(t().stats().cache_hits, 0u);
	EXPECT_EQ(t().stats().rejected, 0u);
	EXPECT_EQ(t().stats().width, 64u);
	EXPECT_EQ(t().stats().height, 48u);
	EXPECT_EQ(t().stats().import_path, "host");
	EXPECT_EQ(source.open_calls, 1);
	EXPECT_EQ(t().cached(), 1u);
	ASSERT_TRUE(t().primary().visible());
	EXPECT_EQ(t().primary().info.buffer_id, 10u);
	EXPECT_EQ(t().primary().info.width, 64u);
	ASSERT_NE(shown_primary(), nullptr);
	EXPECT_EQ(shown_primary()->plane().buffer_id, 10u);
	EXPECT_EQ(counters.live, 1);
	EXPECT_TRUE(g_errors.empty());
}

TEST_F(HeadTrackerTest, SamePlaneAgainIsNoChange) {
	source.set(primary(10));
	t().poll();
	const ImportedBuffer *first = t().primary().buffer.get();
	for (int i = 0; i < 5; i++) {
		const Changes c = t().poll();
		EXPECT_FALSE(c.any()) << describe(c);
	}
	EXPECT_EQ(t().generation(), 1u);
	EXPECT_EQ(source.open_calls, 1);
	EXPECT_EQ(importer_calls, 1);
	EXPECT_EQ(t().stats().imports, 1u);
	EXPECT_EQ(t().primary().buffer.get(), first);
	EXPECT_EQ(counters.content_changed, 1); // only when it was first shown
}

TEST_F(HeadTrackerTest, DoubleBufferFlipsImportTwice) {
	const PlaneInfo a = primary(100), b = primary(101);
	for (int i = 0; i < 1000; i++) {
		source.set(i % 2 ? b : a);
		const Changes c = t().poll();
		ASSERT_TRUE(c.frame) << "poll " << i;
		ASSERT_EQ(c.mode, i == 0) << "poll " << i;
		ASSERT_FALSE(c.cursor_image || c.cursor_position) << "poll " << i;
		ASSERT_EQ(t().generation(), uint64_t(i + 1)) << "poll " << i;
		ASSERT_EQ(t().primary().info.buffer_id, i % 2 ? 101u : 100u);
	}
	EXPECT_EQ(t().stats().imports, 2u);
	EXPECT_EQ(importer_calls, 2);
	EXPECT_EQ(source.open_calls, 2);
	EXPECT_EQ(t().stats().buffer_opens, 2u);
	EXPECT_GE(t().stats().cache_hits, 998u);
	EXPECT_EQ(t().stats().evictions, 0u);
	EXPECT_EQ(t().cached(), 2u);
	EXPECT_EQ(counters.live, 2);
	// A buffer coming back may have been drawn into meanwhile: each flip tells the import.
	EXPECT_EQ(counters.content_changed, 1000);
}

TEST_F(HeadTrackerTest, RecycledIdWithAnotherConfigurationIsANewBuffer) {
	source.set(primary(7, 64, 48));
	t().poll();
	const ImportedBuffer *first = t().primary().buffer.get();

	// Same id, another stride (same size): drivers recycle ids, so this is another buffer.
	PlaneInfo restrided = primary(7, 64, 48);
	restrided.stride = 512;
	restrided.size = 512 * 48;
	source.set(restrided);
	Changes c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode) << "same size, no mode change";
	EXPECT_EQ(source.open_calls, 2);
	EXPECT_EQ(t().stats().imports, 2u);
	EXPECT_NE(t().primary().buffer.get(), first);
	EXPECT_EQ(t().primary().info.stride, 512u);

	// Same id, another size: a new buffer and a mode change.
	source.set(primary(7, 80, 60));
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.mode);
	EXPECT_EQ(source.open_calls, 3);
	EXPECT_EQ(t().stats().imports, 3u);
	EXPECT_EQ(t().stats().width, 80u);
	EXPECT_EQ(t().stats().height, 60u);

	// Same id, another format or modifier or offset: each a new buffer.
	PlaneInfo abgr = primary(7, 80, 60);
	abgr.drm_format = DRM_FORMAT_ABGR8888;
	source.set(abgr);
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(t().stats().imports, 4u);
	PlaneInfo moved = abgr;
	moved.offset = 4096;
	source.set(moved);
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().stats().imports, 5u);
	PlaneInfo modded = moved;
	modded.drm_format_mod = 1;
	source.set(modded);
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().stats().imports, 6u);

	// The first configuration again: a cache hit, no open.
	source.set(primary(7, 64, 48));
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.mode);
	EXPECT_EQ(source.open_calls, 6);
	EXPECT_EQ(t().stats().imports, 6u);
	EXPECT_EQ(t().primary().buffer.get(), first);
}

TEST_F(HeadTrackerTest, PlaneKeyCoversTheWholeConfiguration) {
	const PlaneInfo base = primary(5);
	const PlaneKey k = key_of(base);
	EXPECT_EQ(k, key_of(base));
	std::vector<PlaneInfo> variants(8, base);
	variants[0].buffer_id = 6;
	variants[1].drm_format = DRM_FORMAT_ARGB8888;
	variants[2].drm_format_mod = 2;
	variants[3].width = 65;
	variants[4].height = 49;
	variants[5].stride = 512;
	variants[6].size = base.size + 4096;
	variants[7].offset = 64;
	for (size_t i = 0; i < variants.size(); i++) EXPECT_FALSE(key_of(variants[i]) == k) << "variant " << i;
	// What does not name a buffer is no part of the key.
	PlaneInfo elsewhere = base;
	elsewhere.x_pos = 10;
	elsewhere.y_hot = 1;
	EXPECT_EQ(key_of(elsewhere), k);
	EXPECT_EQ(PlaneKeyHash{}(key_of(elsewhere)), PlaneKeyHash{}(k));
}

TEST_F(HeadTrackerTest, DamageNoticeIsAFrameWithoutImport) {
	source.set(primary(10));
	t().poll();
	const int changed = counters.content_changed;
	source.damage = 1;
	Changes c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(t().generation(), 2u);
	EXPECT_EQ(source.open_calls, 1);
	EXPECT_EQ(t().stats().imports, 1u);
	EXPECT_EQ(counters.content_changed, changed + 1);
	// No new notice, no frame.
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), 2u);
	source.damage = 5;
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().generation(), 3u);
	EXPECT_EQ(source.open_calls, 1);
}

// The rows a source says were drawn into reach the import, as the union since its last refresh;
// a buffer shown anew is refreshed whole (docs/design.md, "Damage rows").
TEST_F(HeadTrackerTest, DamagedRowsReachTheImport) {
	source.tells_rows = true;
	source.set(primary(10));
	t().poll();
	ASSERT_EQ(counters.rows.size(), 1u);
	EXPECT_FALSE(counters.rows[0].has_value()); // shown first: whole
	source.damage = 1;
	source.damaged_rows[1] = {5, 6};
	EXPECT_TRUE(t().poll().frame);
	ASSERT_EQ(counters.rows.size(), 2u);
	EXPECT_EQ(counters.rows[1], (vgpu::RowSpan{5, 6}));
	// Two notices between polls: their union, asked from the count of the last refresh.
	source.damage = 3;
	source.damaged_rows[2] = {1, 2};
	source.damaged_rows[3] = {40, 41};
	source.rows_asked.clear();
	EXPECT_TRUE(t().poll().frame);
	ASSERT_EQ(counters.rows.size(), 3u);
	EXPECT_EQ(counters.rows[2], (vgpu::RowSpan{1, 41}));
	EXPECT_EQ(source.rows_asked, std::vector<uint64_t>{1});
	// A flip to another buffer and back: each is refreshed whole.
	source.set(primary(11));
	t().poll();
	source.set(primary(10));
	t().poll();
	ASSERT_EQ(counters.rows.size(), 5u);
	EXPECT_FALSE(counters.rows[3].has_value());
	EXPECT_FALSE(counters.rows[4].has_value());
	// A source that cannot tell: the whole frame.
	source.tells_rows = false;
	source.damage = 4;
	EXPECT_TRUE(t().poll().frame);
	ASSERT_EQ(counters.rows.size(), 6u);
	EXPECT_FALSE(counters.rows[5].has_value());
}

TEST_F(HeadTrackerTest, DamageBeforeAFlipIsNotCountedTwice) {
	source.set(primary(10));
	t().poll();
	// A flip and a damage notice at once: one frame; the next poll has nothing new.
	source.set(primary(11));
	source.damage = 1;
	EXPECT_TRUE(t().poll().frame);
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
}

TEST_F(HeadTrackerTest, DisabledOrUnsupportedAfterGoodClearsThePrimary) {
	source.set(primary(10));
	t().poll();
	PlaneInfo off = primary(10);
	off.state = PlaneState::disabled;
	off.drm_format = 0;
	off.width = off.height = off.stride = off.size = 0;
	source.set(off);
	Changes c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.cursor_image);
	EXPECT_FALSE(t().primary().visible());
	EXPECT_EQ(t().generation(), 2u);
	EXPECT_EQ(t().stats().rejected, 0u);
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);

	// Enabled again with the same buffer: from the cache, and a mode (the output had none).
	source.set(primary(10));
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.mode);
	EXPECT_EQ(source.open_calls, 1);
	EXPECT_EQ(t().stats().cache_hits, 1u);
	EXPECT_TRUE(t().primary().visible());

	PlaneInfo gone;
	gone.head_id = kHead;
	gone.state = PlaneState::unsupported;
	source.set(gone);
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(t().primary().visible());
}

TEST_F(HeadTrackerTest, RejectedPlaneKeepsTheLastGoodFrameAndCountsOncePerBadGeneration) {
	const PlaneInfo a = primary(100), b = primary(101);
	source.set(a);
	t().poll();
	source.set(b);
	t().poll();
	const ImportedBuffer *shown = t().primary().buffer.get();
	const uint64_t gen = t().generation();
	ASSERT_EQ(gen, 2u);

	PlaneInfo bad = primary(102);
	bad.stride = 100; // below 64 * 4
	source.set(bad);
	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(t().generation(), gen);
	EXPECT_EQ(source.open_calls, 2) << "a plane that fails validation must not be opened";
	ASSERT_TRUE(t().primary().visible());
	EXPECT_EQ(t().primary().buffer.get(), shown);
	EXPECT_EQ(t().primary().info.buffer_id, 101u);
	ASSERT_EQ(g_errors.size(), 1u);
	EXPECT_NE(g_errors[0].find("stride 100"), std::string::npos) << g_errors[0];

	// The same bad plane again: neither counted nor logged again.
	for (int i = 0; i < 3; i++) {
		c = t().poll();
		EXPECT_FALSE(c.any()) << describe(c);
	}
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(g_errors.size(), 1u);

	// Another bad plane is another bad generation.
	PlaneInfo bad2 = primary(103);
	bad2.drm_format = DRM_FORMAT_NV12;
	source.set(bad2);
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 2u);
	EXPECT_EQ(g_errors.size(), 2u);
	EXPECT_EQ(t().primary().buffer.get(), shown);

	// Back to a known good buffer: from the cache, a frame.
	const uint64_t hits = t().stats().cache_hits;
	source.set(a);
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(t().stats().cache_hits, hits + 1);
	EXPECT_EQ(source.open_calls, 2);
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	EXPECT_EQ(t().generation(), gen + 1);
	EXPECT_EQ(t().stats().rejected, 2u);

	// The last bad plane once more after a good one is a new bad generation: counted and logged.
	source.set(bad2);
	EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().stats().rejected, 3u);
	EXPECT_EQ(g_errors.size(), 3u);
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
}

TEST_F(HeadTrackerTest, BadPlaneThenTheShownPlaneIsNoChange) {
	source.set(primary(100));
	t().poll();
	PlaneInfo bad = primary(100, 0, 48); // width 0
	source.set(bad);
	EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().stats().rejected, 1u);
	// The guest fixes it: what is shown is what it shows, nothing to draw.
	source.set(primary(100));
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(source.open_calls, 1);
}

TEST_F(HeadTrackerTest, FirstPlaneRejectedShowsNothing) {
	PlaneInfo bad = primary(1);
	bad.size = 16; // below stride * height
	source.set(bad);
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), 0u);
	EXPECT_FALSE(t().primary().visible());
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(source.open_calls, 0);
}

TEST_F(HeadTrackerTest, BufferSmallerThanThePlaneIsRejected) {
	source.set(primary(100));
	t().poll();
	const int fds = count_open_fds();

	PlaneInfo next = primary(101);
	source.byte_size = next.size - 4096; // the fd holds less than offset + size
	source.set(next);
	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(source.open_calls, 2);
	EXPECT_EQ(t().stats().imports, 1u);
	EXPECT_EQ(importer_calls, 1) << "a buffer that fails validate_backing must not reach the importer";
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	EXPECT_EQ(count_open_fds(), fds) << "the rejected buffer's fd was not closed";
	EXPECT_EQ(t().cached(), 1u);
	ASSERT_EQ(g_errors.size(), 1u);
	EXPECT_NE(g_errors[0].find("byte buffer"), std::string::npos) << g_errors[0];

	// Polled again: not reopened, not recounted.
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(source.open_calls, 2);

	// An offset that pushes the plane past the buffer.
	source.byte_size.reset();
	PlaneInfo shifted = primary(102);
	shifted.offset = 4096;
	source.byte_size = shifted.size; // holds size bytes, not offset + size
	source.set(shifted);
	EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().stats().rejected, 2u);
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
}

TEST_F(HeadTrackerTest, ImportFailureIsARejection) {
	source.set(primary(100));
	t().poll();
	const int fds = count_open_fds();
	fail_import = true;
	source.set(primary(101));
	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(t().stats().imports, 1u);
	EXPECT_EQ(importer_calls, 2);
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	EXPECT_EQ(t().cached(), 1u) << "a failed import must not be cached";
	EXPECT_EQ(count_open_fds(), fds) << "the buffer handed to a failing importer was not closed";
	ASSERT_EQ(g_errors.size(), 1u);
	EXPECT_NE(g_errors[0].find("fake import failure"), std::string::npos) << g_errors[0];

	c = t().poll();
	EXPECT_FALSE(c.any());
	EXPECT_EQ(t().stats().rejected, 1u);

	// The importer recovers; the next buffer shows.
	fail_import = false;
	source.set(primary(102));
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_EQ(t().primary().info.buffer_id, 102u);
	EXPECT_EQ(t().stats().imports, 2u);
}

TEST_F(HeadTrackerTest, OpenFailureIsARejection) {
	source.set(primary(100));
	t().poll();
	source.fail_open = true;
	source.set(primary(101));
	EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_EQ(t().stats().buffer_opens, 1u);
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	ASSERT_EQ(g_errors.size(), 1u);
	EXPECT_NE(g_errors[0].find("fake open failure"), std::string::npos) << g_errors[0];
}

TEST_F(HeadTrackerTest, QueryErrorKeepsTheLastFrame) {
	source.set(primary(100));
	source.set(cursor(200, 5, 5));
	t().poll();
	const uint64_t gen = t().generation();
	source.fail_query = true;
	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().query_errors, 2u); // primary and cursor
	EXPECT_EQ(t().generation(), gen);
	EXPECT_TRUE(t().primary().visible());
	EXPECT_TRUE(t().cursor().visible());
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	EXPECT_EQ(g_errors.size(), 2u);

	// Still failing: counted every time, logged once per plane.
	t().poll();
	t().poll();
	EXPECT_EQ(t().stats().query_errors, 6u);
	EXPECT_EQ(g_errors.size(), 2u);
	EXPECT_EQ(t().stats().rejected, 0u);

	// Recovered with the same planes: nothing to draw.
	source.fail_query = false;
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().query_errors, 6u);
	// ... and a new flip shows.
	source.set(primary(101));
	EXPECT_TRUE(t().poll().frame);
}

TEST_F(HeadTrackerTest, CursorImageAndPosition) {
	source.set(primary(100));
	t().poll();
	const uint64_t gen0 = t().generation();
	EXPECT_EQ(t().cursor_generation(), 0u);

	// A new cursor: image and position.
	source.set(cursor(200, 10, 20));
	Changes c = t().poll();
	EXPECT_TRUE(c.cursor_image);
	EXPECT_TRUE(c.cursor_position);
	EXPECT_FALSE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(t().cursor_generation(), 1u);
	EXPECT_EQ(t().generation(), gen0 + 1);
	ASSERT_TRUE(t().cursor().visible());
	EXPECT_EQ(t().cursor().info.x_pos, 10);
	EXPECT_EQ(t().cursor().info.y_pos, 20);
	EXPECT_EQ(t().cursor().info.x_hot, 2u);
	EXPECT_EQ(t().cursor().info.y_hot, 3u);

	// Same image moved: position only; the cursor generation stays.
	source.set(cursor(200, 30, 40));
	c = t().poll();
	EXPECT_FALSE(c.cursor_image);
	EXPECT_TRUE(c.cursor_position);
	EXPECT_FALSE(c.frame);
	EXPECT_EQ(t().cursor_generation(), 1u);
	EXPECT_EQ(t().generation(), gen0 + 2);
	EXPECT_EQ(t().cursor().info.x_pos, 30);
	EXPECT_EQ(t().cursor().info.y_pos, 40);
	EXPECT_EQ(source.open_calls, 2);

	// Off the top-left edge: negative positions.
	source.set(cursor(200, -5, -7));
	c = t().poll();
	EXPECT_TRUE(c.cursor_position);
	EXPECT_FALSE(c.cursor_image);
	EXPECT_EQ(t().cursor().info.x_pos, -5);
	EXPECT_EQ(t().cursor().info.y_pos, -7);

	// Not moved: nothing.
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), gen0 + 3);

	// A new image where the old one was: image only.
	source.set(cursor(201, -5, -7));
	c = t().poll();
	EXPECT_TRUE(c.cursor_image);
	EXPECT_FALSE(c.cursor_position);
	EXPECT_FALSE(c.frame);
	EXPECT_EQ(t().cursor_generation(), 2u);
	EXPECT_EQ(t().cursor().info.buffer_id, 201u);

	// A new image somewhere else: both.
	source.set(cursor(202, 50, 50));
	c = t().poll();
	EXPECT_TRUE(c.cursor_image);
	EXPECT_TRUE(c.cursor_position);
	EXPECT_EQ(t().cursor_generation(), 3u);

	// The earlier image again: from the cache.
	const int opens = source.open_calls;
	source.set(cursor(200, 50, 50));
	c = t().poll();
	EXPECT_TRUE(c.cursor_image);
	EXPECT_EQ(source.open_calls, opens);
	EXPECT_EQ(t().cursor_generation(), 4u);

	// The cursor goes away: an image change.
	source.remove(PlaneType::cursor);
	c = t().poll();
	EXPECT_TRUE(c.cursor_image);
	EXPECT_FALSE(c.frame);
	EXPECT_FALSE(t().cursor().visible());
	EXPECT_EQ(t().cursor_generation(), 5u);
	// The primary was untouched throughout.
	EXPECT_EQ(t().primary().info.buffer_id, 100u);
	EXPECT_TRUE(t().primary().visible());
}

TEST_F(HeadTrackerTest, CursorHotspotChangeIsAPositionChange) {
	source.set(cursor(200, 10, 10));
	t().poll();
	PlaneInfo c2 = cursor(200, 10, 10);
	c2.x_hot = 7;
	source.set(c2);
	const Changes c = t().poll();
	EXPECT_FALSE(c.cursor_image);
	EXPECT_TRUE(c.cursor_position);
	EXPECT_EQ(t().cursor().info.x_hot, 7u);
	EXPECT_EQ(t().cursor_generation(), 1u);
}

TEST_F(HeadTrackerTest, CursorHotspotOutsideTheImageIsNone) {
	PlaneInfo c = cursor(200, 10, 10);
	c.x_hot = 64; // the image is 64 wide
	c.y_hot = 3;
	source.set(c);
	EXPECT_TRUE(t().poll().cursor_image);
	EXPECT_EQ(t().cursor().info.x_hot, kNoHotspot);
	EXPECT_EQ(t().cursor().info.y_hot, kNoHotspot);

	c.x_hot = 3;
	c.y_hot = 1000;
	source.set(c);
	t().poll();
	EXPECT_EQ(t().cursor().info.x_hot, kNoHotspot);
	EXPECT_EQ(t().cursor().info.y_hot, kNoHotspot);
	EXPECT_EQ(source.open_calls, 1);

	c.x_hot = 63;
	c.y_hot = 63;
	source.set(c);
	EXPECT_TRUE(t().poll().cursor_position);
	EXPECT_EQ(t().cursor().info.x_hot, 63u);
	EXPECT_EQ(t().cursor().info.y_hot, 63u);
}

TEST_F(HeadTrackerTest, OversizedCursorIsRejected) {
	PlaneInfo big = cursor(200, 0, 0);
	big.width = 513;
	big.stride = 513 * 4;
	big.size = big.stride * big.height;
	source.set(big);
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().rejected, 1u);
	EXPECT_FALSE(t().cursor().visible());
	EXPECT_EQ(source.open_calls, 0);
}

TEST_F(HeadTrackerTest, BoundedCacheReleasesImportsAndDescriptors) {
	make_tracker(TrackerOptions{.cache_bound = 4});
	// Fill the cache first, so the descriptors it holds at its bound are in the baseline.
	for (uint64_t id = 1; id <= 4; id++) {
		source.set(primary(id));
		ASSERT_TRUE(t().poll().frame);
	}
	const int fds = count_open_fds();
	int max_live = counters.live;
	for (uint64_t id = 5; id <= 10000; id++) {
		source.set(primary(id));
		const Changes c = t().poll();
		if (!c.frame) {
			ADD_FAILURE() << "buffer " << id << " not shown";
			break;
		}
		max_live = std::max(max_live, counters.live);
		if (id % 1000 == 0) {
			ASSERT_LE(count_open_fds(), fds) << "descriptors grew by buffer " << id;
		}
	}
	EXPECT_EQ(t().stats().imports, 10000u);
	EXPECT_EQ(t().stats().evictions, 9996u);
	EXPECT_EQ(t().cached(), 4u);
	EXPECT_EQ(t().generation(), 10000u);
	// Four cached, plus the shown buffer should it have left the cache.
	EXPECT_LE(max_live, 5);
	EXPECT_LE(counters.live, 5);
	EXPECT_EQ(counters.created, 10000);
	EXPECT_LE(count_open_fds(), fds);
	// The four most recent are the ones cached: going back to the oldest of them is a hit.
	const uint64_t hits = t().stats().cache_hits;
	source.set(primary(9997));
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().stats().cache_hits, hits + 1);
	source.set(primary(9996));
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().stats().imports, 10001u);
}

TEST_F(HeadTrackerTest, ShownBufferOutlivesItsEviction) {
	make_tracker(TrackerOptions{.cache_bound = 1});
	source.set(primary(100));
	source.set(cursor(200, 0, 0));
	t().poll(); // the cursor's import evicts the primary's from a cache of one
	EXPECT_EQ(t().cached(), 1u);
	EXPECT_EQ(t().stats().evictions, 1u);
	EXPECT_EQ(counters.live, 2);
	ASSERT_NE(shown_primary(), nullptr);
	EXPECT_GE(::fcntl(shown_primary()->fd(), F_GETFD), 0) << "the shown primary's fd was closed";
	// Still the same buffer: no change and no reimport.
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(source.open_calls, 2);
}

TEST_F(HeadTrackerTest, DisconnectShowsNothingAndReleasesEverything) {
	const int fds = count_open_fds();
	source.set(primary(100));
	t().poll();
	source.set(primary(101));
	t().poll();
	source.set(cursor(200, 1, 1));
	t().poll();
	EXPECT_EQ(counters.live, 3);
	EXPECT_EQ(count_open_fds(), fds + 3);
	const uint64_t gen = t().generation();
	const uint64_t cursor_gen = t().cursor_generation();

	Changes c = t().disconnect();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.cursor_image);
	EXPECT_FALSE(t().primary().visible());
	EXPECT_FALSE(t().cursor().visible());
	EXPECT_EQ(t().cached(), 0u);
	EXPECT_EQ(counters.live, 0);
	EXPECT_EQ(count_open_fds(), fds);
	EXPECT_FALSE(t().stats().connected);
	EXPECT_EQ(t().generation(), gen + 1);
	EXPECT_EQ(t().cursor_generation(), cursor_gen + 1);

	// Nothing left to take away.
	c = t().disconnect();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), gen + 1);

	// Back: everything is imported anew.
	const int opens = source.open_calls;
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_TRUE(c.mode);
	EXPECT_TRUE(c.cursor_image);
	EXPECT_TRUE(t().stats().connected);
	EXPECT_EQ(source.open_calls, opens + 2);
}

class HeadTrackerWatchTest : public HeadTrackerTest {
protected:
	// A primary with padding: stride 320 for a 64-pixel row of 256 bytes, starting at 4096.
	static PlaneInfo padded_primary(uint64_t id) {
		PlaneInfo p = primary(id, 64, 48);
		p.stride = 320;
		p.size = static_cast<uint32_t>(align_up(320 * 48, 4096));
		p.offset = 4096;
		return p;
	}
	uint8_t *pixels() {
		auto *imp = dynamic_cast<FakeImport *>(tracker->primary().buffer.get());
		EXPECT_NE(imp, nullptr);
		return imp ? imp->pixels() : nullptr;
	}
	uint8_t *pixel(uint32_t x, uint32_t y) { return pixels() + 4096 + size_t{y} * 320 + size_t{x} * 4; }
};

TEST_F(HeadTrackerWatchTest, ChangedBytesInThePlaneAreAFrame) {
	map_imports = true;
	make_tracker(TrackerOptions{.watch_content = true});
	source.set(padded_primary(100));
	ASSERT_TRUE(t().poll().frame);
	ASSERT_NE(pixels(), nullptr);
	const int opens = source.open_calls;

	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << "unchanged bytes: " << describe(c);

	// A pixel inside the plane.
	pixel(5, 10)[1] = 0x7f;
	const int changed = counters.content_changed;
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(counters.content_changed, changed + 1);
	c = t().poll();
	EXPECT_FALSE(c.any()) << "the same bytes again: " << describe(c);

	// The first and the last byte of the plane area.
	pixel(0, 0)[0] = 1;
	EXPECT_TRUE(t().poll().frame);
	pixel(63, 47)[3] = 1;
	EXPECT_TRUE(t().poll().frame);
	EXPECT_FALSE(t().poll().any());

	// Writing the same value is no change.
	pixel(63, 47)[3] = 1;
	EXPECT_FALSE(t().poll().any());

	// Bytes outside the plane: before the offset, in a row's padding, after the last row.
	pixels()[100] = 0x55;
	pixels()[4096 + 10 * 320 + 256 + 8] = 0x55;
	pixels()[4096 + 48 * 320 + 4] = 0x55;
	c = t().poll();
	EXPECT_FALSE(c.any()) << "bytes outside the plane: " << describe(c);
	EXPECT_EQ(source.open_calls, opens);
	EXPECT_EQ(t().stats().imports, 1u);
}

TEST_F(HeadTrackerWatchTest, HashedContentIsRefreshedWhole) {
	map_imports = true;
	make_tracker(TrackerOptions{.watch_content = true});
	source.tells_rows = true;
	source.set(padded_primary(10));
	t().poll();
	// A notice for row 0, and bytes changed in row 40: the whole plane is refreshed.
	source.damage = 1;
	source.damaged_rows[1] = {0, 1};
	pixel(3, 40)[0] ^= 0xff;
	EXPECT_TRUE(t().poll().frame);
	ASSERT_EQ(counters.rows.size(), 2u);
	EXPECT_FALSE(counters.rows[1].has_value()); // a watched plane changes where no notice says
	// Without a notice too.
	pixel(3, 41)[0] ^= 0xff;
	EXPECT_TRUE(t().poll().frame);
	ASSERT_EQ(counters.rows.size(), 3u);
	EXPECT_FALSE(counters.rows[2].has_value());
}

TEST_F(HeadTrackerWatchTest, WithoutWatchingChangedBytesAreNoFrame) {
	map_imports = true; // CPU-readable, but the option is off and the source needs no watch
	source.set(padded_primary(100));
	ASSERT_TRUE(t().poll().frame);
	ASSERT_NE(pixels(), nullptr);
	pixel(5, 10)[1] = 0x7f;
	const Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
}

TEST_F(HeadTrackerWatchTest, WatchingSurvivesFlips) {
	map_imports = true;
	make_tracker(TrackerOptions{.watch_content = true});
	source.set(padded_primary(100));
	t().poll();
	source.set(padded_primary(101));
	EXPECT_TRUE(t().poll().frame);
	EXPECT_FALSE(t().poll().any());
	pixel(1, 1)[0] = 9;
	EXPECT_TRUE(t().poll().frame);
	// Back to the other buffer, then its bytes change.
	source.set(padded_primary(100));
	EXPECT_TRUE(t().poll().frame);
	EXPECT_FALSE(t().poll().any());
	pixel(2, 2)[2] = 9;
	EXPECT_TRUE(t().poll().frame);
	EXPECT_FALSE(t().poll().any());
}

TEST_F(HeadTrackerWatchTest, WatchingWithoutCpuAccessNeverFires) {
	make_tracker(TrackerOptions{.watch_content = true}); // imports give no cpu_data()
	source.set(padded_primary(100));
	EXPECT_TRUE(t().poll().frame);
	for (int i = 0; i < 3; i++) EXPECT_FALSE(t().poll().any());
}

} // namespace

TEST_F(HeadTrackerTest, SourceSayingTheDeviceIsGoneDisconnectsOnce) {
	const int fds = count_open_fds();
	source.set(primary(100));
	source.set(cursor(200, 1, 1));
	t().poll();
	EXPECT_EQ(count_open_fds(), fds + 2);
	source.gone = true;
	Changes c = t().poll();
	EXPECT_TRUE(c.frame) << "the head must turn to no-signal";
	EXPECT_FALSE(t().primary().visible());
	EXPECT_FALSE(t().stats().connected);
	EXPECT_EQ(count_open_fds(), fds) << "every import of a gone device is released";
	const int opens = source.open_calls;
	c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(source.open_calls, opens) << "a gone device is not asked for buffers";
}

} // namespace vscanout::core

namespace vscanout::core {
namespace {

// A pipe standing in for a dma-buf whose writer is still at work.
struct FakeFence {
	int fds[2] = {-1, -1};
	FakeFence() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
	~FakeFence() {
		for (int fd : fds)
			if (fd >= 0) ::close(fd);
	}
	void signal() { ASSERT_EQ(::write(fds[1], "x", 1), 1); }
};

TEST_F(HeadTrackerTest, ANewFrameWaitsForItsWriteFenceWithoutReadingTheBuffer) {
	FakeFence fence;
	const int fds_before = count_open_fds();
	source.set(primary(10));
	ASSERT_TRUE(t().poll().frame);
	source.fenced[11] = fence.fds[0];
	source.set(primary(11));
	const int imports_before = importer_calls;
	Changes c = t().poll();
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().generation(), 1u);
	EXPECT_EQ(t().primary().info.buffer_id, 10u) << "the last good frame stays up";
	EXPECT_GE(t().fence_fd(), 0);
	EXPECT_EQ(importer_calls, imports_before) << "nothing reads the buffer before its writer is done";
	EXPECT_EQ(t().stats().fence_waits, 1u);
	c = t().poll(); // still in flight: still nothing, and no second wait
	EXPECT_FALSE(c.any()) << describe(c);
	EXPECT_EQ(t().stats().fence_waits, 1u);
	EXPECT_EQ(source.open_calls, 2) << "the waiting buffer is opened once";

	fence.signal();
	c = t().poll();
	EXPECT_TRUE(c.frame);
	EXPECT_FALSE(c.mode);
	EXPECT_EQ(t().generation(), 2u);
	EXPECT_EQ(t().primary().info.buffer_id, 11u);
	EXPECT_EQ(t().fence_fd(), -1);
	EXPECT_EQ(importer_calls, imports_before + 1);
	EXPECT_EQ(t().stats().fence_timeouts, 0u);
	EXPECT_TRUE(g_errors.empty());
	source.fenced.clear();
	tracker.reset();
	EXPECT_EQ(count_open_fds(), fds_before) << "the imports' and the wait's descriptors are closed";
	make_tracker(TrackerOptions{});
}

TEST_F(HeadTrackerTest, ALateFenceIsLoggedOnceAndItsFrameStillShowsWhenItSignals) {
	TrackerOptions o;
	o.fence_timeout_ms = 1;
	make_tracker(o);
	source.set(primary(10));
	ASSERT_TRUE(t().poll().frame);
	FakeFence fence;
	source.fenced[11] = fence.fds[0];
	source.set(primary(11));
	EXPECT_FALSE(t().poll().any());
	EXPECT_GE(t().fence_timeout_in_ms(), 0);
	::usleep(5000);
	EXPECT_EQ(t().fence_timeout_in_ms(), 0);
	for (int i = 0; i < 3; i++) EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().stats().fence_timeouts, 1u);
	EXPECT_EQ(t().fence_timeout_in_ms(), -1) << "once late, no more deadlines";
	ASSERT_EQ(g_errors.size(), 1u);
	EXPECT_NE(g_errors[0].find("has not signalled in 1 ms"), std::string::npos) << g_errors[0];
	EXPECT_EQ(t().primary().info.buffer_id, 10u);
	fence.signal();
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().primary().info.buffer_id, 11u);
	source.fenced.clear();
}

TEST_F(HeadTrackerTest, AGuestThatMovesOnDropsTheWaitingFrame) {
	source.set(primary(10));
	ASSERT_TRUE(t().poll().frame);
	FakeFence fence;
	source.fenced[11] = fence.fds[0];
	source.set(primary(11));
	EXPECT_FALSE(t().poll().any());
	ASSERT_GE(t().fence_fd(), 0);
	source.set(primary(12));
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().primary().info.buffer_id, 12u);
	EXPECT_EQ(t().fence_fd(), -1);
	// Back to the shown buffer while a new one waits: the wait is dropped, nothing changes.
	source.set(primary(11));
	EXPECT_FALSE(t().poll().any());
	source.set(primary(12));
	EXPECT_FALSE(t().poll().any());
	EXPECT_EQ(t().fence_fd(), -1);
	// Turning the plane off drops a wait too.
	source.set(primary(11));
	EXPECT_FALSE(t().poll().any());
	source.remove(PlaneType::primary);
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(t().fence_fd(), -1);
	source.fenced.clear();
}

TEST_F(HeadTrackerTest, DamageToAFencedFrontBufferWaitsToo) {
	FakeFence fence;
	fence.signal(); // the first frame is complete
	source.fenced[10] = fence.fds[0];
	source.set(primary(10));
	ASSERT_TRUE(t().poll().frame);
	char byte;
	ASSERT_EQ(::read(fence.fds[0], &byte, 1), 1); // a writer is at work again
	source.damage++;
	EXPECT_FALSE(t().poll().any());
	EXPECT_GE(t().fence_fd(), 0);
	const int changed = counters.content_changed;
	fence.signal();
	EXPECT_TRUE(t().poll().frame);
	EXPECT_EQ(counters.content_changed, changed + 1);
	source.fenced.clear();
}

} // namespace
} // namespace vscanout::core
