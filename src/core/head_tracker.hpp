// One guest head as the core sees it: polls its planes, validates them, decides whether the
// head's generation advanced, and keeps the LRU of imported buffers. Knows no wlroots or
// Vulkan: the render layer's imports arrive through the Importer callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
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
	// The guest's dma-buf while this import lives, or -1 (the fences are read from it).
	virtual int dmabuf_fd() const { return -1; }
};

// What names a buffer configuration: drivers recycle ids, so the id alone is not enough.
struct PlaneKey {
	vgpu::PlaneType type = vgpu::PlaneType::primary; // a cursor never gets a primary's import
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
	// How long a new primary buffer's write fences may take before the head logs it (it keeps
	// the last good frame and goes on waiting).
	uint32_t fence_timeout_ms = 1000;
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

	// A new primary frame waits for its buffer's write fences: this descriptor becomes readable
	// when they signal (poll() then shows it), or -1 when nothing waits.
	int fence_fd() const { return pending_ ? pending_->fence.get() : -1; }
	// Milliseconds until the wait counts as late (poll() then logs it), or -1.
	int fence_timeout_in_ms() const;

private:
	// A primary frame held back until its buffer's writers are done.
	struct PendingFrame {
		vgpu::PlaneInfo plane;
		PlaneKey key;
		std::shared_ptr<ImportedBuffer> imported; // a cached import, or the shown buffer drawn into
		std::optional<vgpu::GuestBuffer> opened;  // a buffer opened but not imported yet
		bool content_only = false;                // the shown buffer itself, drawn into again
		UniqueFd fence;
		uint64_t since_ms = 0;
		bool late = false;
	};
	void poll_plane(vgpu::PlaneType type, Changes &changes);
	void new_primary(const vgpu::PlaneInfo &plane, Changes &changes);
	// Holds `frame` back (moved into pending_) while `fd`, a dma-buf, has write fences in flight;
	// false: nothing to wait for, show it now.
	bool wait_for_fences(int fd, PendingFrame &frame);
	void resolve_pending(Changes &changes);
	void show_new_primary(PendingFrame &frame, Changes &changes);
	void show_primary(const vgpu::PlaneInfo &plane, std::shared_ptr<ImportedBuffer> buffer, Changes &changes);
	void reject(int idx, const PlaneKey &key, const vgpu::PlaneInfo &plane, const std::string &why);
	Result<std::shared_ptr<ImportedBuffer>> import_opened(const vgpu::PlaneInfo &plane, vgpu::GuestBuffer buffer);
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
	std::optional<PendingFrame> pending_;
	// Per plane (index 0 primary, 1 cursor): the last bad plane, so it is logged once per bad
	// generation, and whether the last query failed, so a failing device is logged once.
	std::optional<PlaneKey> last_bad_[2];
	bool query_failing_[2] = {false, false};
};

} // namespace vscanout::core
