// Plane validation (core/validate.cpp) on fuzzer-built planes, and the head tracker
// (core/head_tracker.hpp) on a sequence of them from a fake source.
//
// Part 1 checks validate_plane, validate_backing and normalize_hotspot against what they promise
// (docs/design.md, "Validation"): a plane both accept is read row by row (hash_plane, as
// --refresh=watch does) from a heap buffer of exactly the fuzzer-chosen buffer size, so any plane
// they let through that reaches past its buffer is an AddressSanitizer report.
// Part 2 runs BasicHeadTracker with a fake import type over fuzzer-chosen planes, buffer sizes,
// damage, failures, write fences and disconnects, and checks what it shows and that every import
// is released.
#include <drm_fourcc.h>
#include <fcntl.h>
#include <unistd.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "core/format.hpp"
#include "core/head_tracker.hpp"
#include "core/validate.hpp"
#include "fuzz_common.hpp"

namespace vscanout::fuzz {
namespace {

using vgpu::PlaneInfo;
using vgpu::PlaneState;
using vgpu::PlaneType;

constexpr uint32_t kHead = 0;
// Buffers are really allocated up to this size (larger sizes are only compared).
constexpr uint64_t kMaxRealBuffer = 1 << 20;

constexpr uint32_t kFormats[] = {DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_XBGR8888, DRM_FORMAT_ABGR8888,
                                 DRM_FORMAT_RGB565,   DRM_FORMAT_NV12,     DRM_FORMAT_BGRX8888, DRM_FORMAT_C8};

// A dimension: mostly small (real buffers), sometimes anything.
uint32_t dimension(FuzzedDataProvider &in) {
	return in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 300) : in.ConsumeIntegral<uint32_t>();
}

PlaneInfo make_plane(FuzzedDataProvider &in, PlaneType type) {
	PlaneInfo p;
	p.head_id = kHead;
	p.type = type;
	p.state = in.PickValueInArray(
	    {PlaneState::enabled, PlaneState::enabled, PlaneState::enabled, PlaneState::disabled, PlaneState::unsupported});
	p.drm_format = in.ConsumeBool() ? in.PickValueInArray(kFormats) : in.ConsumeIntegral<uint32_t>();
	p.drm_format_mod = in.ConsumeBool() ? 0 : in.ConsumeIntegral<uint64_t>();
	p.width = dimension(in);
	p.height = dimension(in);
	const auto *f = core::find_format(p.drm_format);
	const uint32_t bpp = f && f->bytes_per_pixel ? f->bytes_per_pixel : 4;
	// Often a consistent stride and size, so that the accepted paths are reached; else anything.
	if (in.ConsumeBool())
		p.stride = p.width * bpp + in.ConsumeIntegralInRange<uint32_t>(0, 3) * bpp;
	else
		p.stride = in.ConsumeIntegral<uint32_t>();
	if (in.ConsumeBool())
		p.size = static_cast<uint32_t>(uint64_t{p.stride} * p.height + in.ConsumeIntegralInRange<uint32_t>(0, 4096));
	else
		p.size = in.ConsumeIntegral<uint32_t>();
	p.x_pos = in.ConsumeIntegral<int32_t>();
	p.y_pos = in.ConsumeIntegral<int32_t>();
	p.x_hot = in.ConsumeBool() ? vgpu::kNoHotspot : in.ConsumeIntegralInRange<uint32_t>(0, 600);
	p.y_hot = in.ConsumeBool() ? vgpu::kNoHotspot : in.ConsumeIntegralInRange<uint32_t>(0, 600);
	p.buffer_id = in.ConsumeIntegralInRange<uint64_t>(0, 6); // few ids: cache hits and recycled ids
	p.offset = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 64) * bpp : in.ConsumeIntegral<uint64_t>();
	p.region_index = in.ConsumeIntegralInRange<uint32_t>(0, 2);
	return p;
}

// Reads every row the way the consumers of a validated plane do, from a buffer of `bytes`.
void read_rows(const PlaneInfo &p, uint64_t bytes) {
	std::vector<uint8_t> buffer(bytes);
	(void)core::hash_plane(buffer.data() + p.offset, p);
}

void check_validation(FuzzedDataProvider &in) {
	const PlaneType type = in.ConsumeBool() ? PlaneType::primary : PlaneType::cursor;
	const PlaneInfo p = make_plane(in, type);
	const uint64_t bytes =
	    in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, kMaxRealBuffer) : in.ConsumeIntegral<uint64_t>();
	const auto bad = core::validate_plane(p);
	const auto bad_backing = core::validate_backing(p, bytes);
	if (bad) FUZZ_CHECK(!bad->field.empty() && !bad->reason.empty());
	if (!p.enabled()) {
		FUZZ_CHECK(!bad && !bad_backing);
		return;
	}
	if (!bad) {
		const core::FormatInfo *f = core::find_format(p.drm_format);
		FUZZ_CHECK(f && f->supported && f->bytes_per_pixel > 0);
		FUZZ_CHECK(p.width >= 1 && p.width <= core::kMaxDimension && p.height >= 1 && p.height <= core::kMaxDimension);
		FUZZ_CHECK(uint64_t{p.stride} >= uint64_t{p.width} * f->bytes_per_pixel);
		FUZZ_CHECK(uint64_t{p.stride} * p.height <= p.size);
		if (type == PlaneType::cursor)
			FUZZ_CHECK(p.drm_format == DRM_FORMAT_ARGB8888 && p.width <= core::kMaxCursorDimension &&
			           p.height <= core::kMaxCursorDimension);
	}
	if (!bad_backing) {
		FUZZ_CHECK(p.offset <= bytes && p.size <= bytes - p.offset);
		if (!bad && bytes <= kMaxRealBuffer) read_rows(p, bytes);
	}
	const PlaneInfo n = core::normalize_hotspot(p);
	FUZZ_CHECK(n.x_pos >= core::kMinCursorPosition && n.x_pos <= core::kMaxCursorPosition);
	FUZZ_CHECK(n.y_pos >= core::kMinCursorPosition && n.y_pos <= core::kMaxCursorPosition);
	FUZZ_CHECK((n.x_hot == vgpu::kNoHotspot && n.y_hot == vgpu::kNoHotspot) ||
	           (n.x_hot < n.width && n.y_hot < n.height));
}

// An import as the renderer's host path has it: a CPU copy of the buffer, exactly as large as
// the buffer (reads past it are AddressSanitizer reports).
struct Counters {
	int live = 0;
};
class FuzzImport : public core::ImportedBuffer {
public:
	FuzzImport(const vgpu::GuestBuffer &b, Counters &c) : bytes_(b.byte_size), counters_(c) { counters_.live++; }
	~FuzzImport() override { counters_.live--; }
	const uint8_t *cpu_data() const override { return bytes_.data(); }
	const char *path() const override { return "host"; }

private:
	std::vector<uint8_t> bytes_;
	Counters &counters_;
};

// A source whose planes, buffer sizes, damage and failures the input sets.
class FuzzSource : public vgpu::Source {
public:
	std::map<PlaneType, PlaneInfo> planes; // missing: disabled
	uint64_t byte_size = 0;                // of the next buffer opened (0: offset + size)
	bool fail_query = false, fail_open = false, gone = false, dmabuf = false;
	uint64_t damage = 0;
	// "dma-bufs" whose write fences are in flight: a pipe's read end, readable once signalled.
	std::map<uint64_t, std::pair<UniqueFd, UniqueFd>> fences;

	std::string name() const override { return "fuzz"; }
	std::vector<uint32_t> heads() const override { return {kHead}; }
	bool connected(uint32_t) const override { return !gone; }
	uint64_t damage_seq(uint32_t) const override { return damage; }
	bool needs_content_watch(uint32_t) const override { return watch; }
	bool watch = false;

	Result<PlaneInfo> query(uint32_t head, PlaneType type) override {
		if (fail_query) return fail("fuzz: query failure");
		if (auto it = planes.find(type); it != planes.end()) return it->second;
		PlaneInfo p;
		p.head_id = head;
		p.type = type;
		return p;
	}
	Result<vgpu::GuestBuffer> open_buffer(const PlaneInfo &plane) override {
		if (fail_open) return fail("fuzz: open failure");
		vgpu::GuestBuffer b;
		b.byte_size = byte_size ? byte_size : plane.offset + plane.size;
		if (b.byte_size > kMaxRealBuffer) return fail("fuzz: a buffer this large is not made");
		if (dmabuf) {
			auto &fence = fences[plane.buffer_id];
			if (!fence.first) {
				int fds[2];
				if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return fail("fuzz: pipe");
				fence = {UniqueFd(fds[0]), UniqueFd(fds[1])};
			}
			b.fd = UniqueFd(::fcntl(fence.first.get(), F_DUPFD_CLOEXEC, 0));
			b.kind = vgpu::BufferKind::dmabuf;
		}
		return b;
	}
	void signal_all() {
		for (auto &[id, f] : fences) {
			const char byte = 1; // the read end polls readable: the fence signalled
			if (::write(f.second.get(), &byte, 1) < 0) continue;
		}
	}
};

void check_tracker(FuzzedDataProvider &in) {
	FuzzSource source;
	Counters counters;
	bool fail_import = false;
	core::TrackerOptions options;
	options.cache_bound = in.ConsumeIntegralInRange<size_t>(2, 5);
	options.watch_content = in.ConsumeBool();
	options.fence_timeout_ms = in.ConsumeBool() ? 0 : 1000;
	{
		core::BasicHeadTracker<FuzzImport> tracker(
		    kHead, source,
		    [&](const PlaneInfo &, vgpu::GuestBuffer b) -> Result<std::shared_ptr<FuzzImport>> {
			    if (fail_import) return fail("fuzz: import failure");
			    return std::make_shared<FuzzImport>(b, counters);
		    },
		    options);
		for (int step = 0; step < 64 && in.remaining_bytes() > 0; step++) {
			switch (in.ConsumeIntegralInRange<int>(0, 11)) {
			case 0:
			case 1: source.planes[PlaneType::primary] = make_plane(in, PlaneType::primary); break;
			case 2: source.planes[PlaneType::cursor] = make_plane(in, PlaneType::cursor); break;
			case 3: source.planes.erase(in.ConsumeBool() ? PlaneType::primary : PlaneType::cursor); break;
			case 4:
				source.byte_size = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<uint64_t>(0, kMaxRealBuffer + 4096);
				break;
			case 5: source.fail_query = in.ConsumeBool(); break;
			case 6: source.fail_open = in.ConsumeBool(); break;
			case 7: fail_import = in.ConsumeBool(); break;
			case 8: source.damage += in.ConsumeIntegralInRange<uint64_t>(0, 2); break;
			case 9:
				source.dmabuf = in.ConsumeBool();
				source.watch = in.ConsumeBool();
				break;
			case 10: source.signal_all(); break;
			case 11: source.gone = in.ConsumeBool(); break;
			}
			(void)tracker.poll();
			// What is shown passed validation, with a buffer it fits in.
			for (const auto *shown : {&tracker.primary(), &tracker.cursor()}) {
				if (!shown->visible()) continue;
				FUZZ_CHECK(shown->info.enabled());
				FUZZ_CHECK(!core::validate_plane(shown->info));
			}
			if (tracker.cursor().visible()) FUZZ_CHECK(tracker.cursor().info.type == PlaneType::cursor);
			if (tracker.primary().visible()) FUZZ_CHECK(tracker.primary().info.type == PlaneType::primary);
			FUZZ_CHECK(tracker.cached() <= options.cache_bound);
			// The cache, the two shown planes and a frame waiting for its fences: nothing else.
			FUZZ_CHECK(counters.live <= static_cast<int>(options.cache_bound) + 3);
		}
	}
	FUZZ_CHECK(counters.live == 0); // every import released with the tracker
}

} // namespace
} // namespace vscanout::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace vscanout::fuzz;
	quiet_logs();
	FuzzedDataProvider in(data, size);
	if (in.ConsumeBool())
		check_validation(in);
	else
		check_tracker(in);
	return 0;
}
