// One guest head as the core sees it: polls its planes, validates them, decides whether the
// head's generation advanced, and keeps the LRU of imported buffers. Knows no wlroots or
// Vulkan: the render layer's imports arrive through the Importer callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/result.hpp"
#include "core/lru_cache.hpp"
#include "core/stats.hpp"
#include "vgpu/source.hpp"

namespace vscanout::core {

// A guest buffer made usable by the renderer. Destroying it releases the fd and GPU memory.
class ImportedBuffer {
public:
	virtual ~ImportedBuffer() = default;
	// Byte 0 of the buffer when the CPU can read it, else nullptr (hashing, hardware cursors).
	virtual const uint8_t *cpu_data() const { return nullptr; }
	// "dmabuf", "host" or "copy".
	virtual const char *path() const = 0;
	// Content may have changed under the same key; a copy import refreshes its copy here.
	virtual void content_changed() {}
};

// What names a buffer configuration: drivers recycle ids, so the id alone is not enough.
struct PlaneKey {
	uint64_t buffer_id = 0;
	uint32_t drm_format = 0;
	uint64_t modifier = 0;
	uint32_t width = 0, height = 0, stride = 0, size = 0;
	uint64_t offset = 0;
	uint32_t region_index = 0;
	bool operator==(const PlaneKey &) const = default;
};
PlaneKey key_of(const vgpu::PlaneInfo &p);

struct PlaneKeyHash {
	size_t operator()(const PlaneKey &k) const;
};

using Importer = std::function<Result<std::shared_ptr<ImportedBuffer>>(const vgpu::PlaneInfo &, vgpu::GuestBuffer)>;

struct ShownPlane {
	vgpu::PlaneInfo info;                   // the last good plane
	std::shared_ptr<ImportedBuffer> buffer; // nullptr: nothing to show (disabled, or never good)
	bool visible() const { return buffer != nullptr; }
};

struct Changes {
	bool frame = false;           // the primary shows something else: draw and commit
	bool mode = false;            // the primary's size changed: the output follows
	bool cursor_image = false;    // the cursor image changed, appeared or disappeared
	bool cursor_position = false; // the cursor moved
	bool any() const { return frame || mode || cursor_image || cursor_position; }
};

struct TrackerOptions {
	size_t cache_bound = 8;
	// Hash the primary each poll and treat a changed hash as new content (region planes,
	// --refresh=watch for guests that draw into their front buffer without telling).
	bool watch_content = false;
};

class HeadTracker {
public:
	HeadTracker(uint32_t head, vgpu::Source &source, Importer importer, TrackerOptions options);

	// Queries both planes once and folds what changed into the shown state.
	Changes poll();

	// The device went away: show nothing and release every import.
	Changes disconnect();

	const ShownPlane &primary() const { return primary_; }
	const ShownPlane &cursor() const { return cursor_; }
	uint32_t head() const { return head_; }
	uint64_t generation() const { return stats_.generation; }
	uint64_t cursor_generation() const { return cursor_generation_; }
	size_t cached() const { return cache_.size(); }
	HeadStats &stats() { return stats_; }
	const HeadStats &stats() const { return stats_; }

private:
	struct Pending; // per-plane bookkeeping of bad planes and errors
	void poll_plane(vgpu::PlaneType type, Changes &changes);
	Result<std::shared_ptr<ImportedBuffer>> lookup_or_import(const vgpu::PlaneInfo &plane);
	std::optional<uint64_t> content_hash() const;

	uint32_t head_;
	vgpu::Source &source_;
	Importer importer_;
	TrackerOptions options_;
	LruCache<PlaneKey, std::shared_ptr<ImportedBuffer>, PlaneKeyHash> cache_;
	ShownPlane primary_, cursor_;
	HeadStats stats_;
	uint64_t cursor_generation_ = 0;
	uint64_t last_damage_ = 0;
	std::optional<uint64_t> last_hash_;
	// Per plane (index 0 primary, 1 cursor): the last bad plane, so it is logged once per bad
	// generation, and whether the last query failed, so a failing device is logged once.
	std::optional<PlaneKey> last_bad_[2];
	bool query_failing_[2] = {false, false};
};

} // namespace vscanout::core
