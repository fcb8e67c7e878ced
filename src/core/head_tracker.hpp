// One guest head as the core sees it: polls its planes, validates them, decides whether the
// head's generation advanced, and keeps the LRU of imported buffers. Knows no wlroots or
// Vulkan: the render layer's imports arrive through the Importer callback, as the import type the
// tracker is instantiated with (render::GuestImport in the compositor), which it hands back as
// that type: its users never downcast.
#pragma once

#include <cinttypes>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/dmabuf_fence.hpp"
#include "base/log.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "core/lru_cache.hpp"
#include "core/stats.hpp"
#include "core/validate.hpp"
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
	// Content may have changed under the same key: in `rows` (all of them when not known); a copy
	// import refreshes its copy of those rows here.
	virtual void content_changed(const std::optional<vgpu::RowSpan> &rows) {}
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

// CLOCK_MONOTONIC in milliseconds (fence deadlines).
uint64_t monotonic_ms();

// The hash of a plane's visible pixels (xxHash over each row of width x bytes per pixel).
uint64_t hash_plane(const uint8_t *base, const vgpu::PlaneInfo &p);

template <class Import>
concept Imported = std::derived_from<Import, ImportedBuffer>;

template <Imported Import>
using BasicImporter = std::function<Result<std::shared_ptr<Import>>(const vgpu::PlaneInfo &, vgpu::GuestBuffer)>;

template <Imported Import> struct BasicShownPlane {
	vgpu::PlaneInfo info;           // the last good plane
	std::shared_ptr<Import> buffer; // nullptr: nothing to show (disabled, or never good)
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

template <Imported Import> class BasicHeadTracker {
public:
	using Importer = BasicImporter<Import>;
	using ShownPlane = BasicShownPlane<Import>;

	BasicHeadTracker(uint32_t head, vgpu::Source &source, Importer importer, TrackerOptions options);

	// Queries both planes once and folds what changed into the shown state.
	Changes poll();

	// The device went away: show nothing and release every import.
	Changes disconnect();

	// The renderer's device was lost (docs/design.md, "Device loss"): every import goes (fds
	// closed, memory freed) and nothing is shown or refused any more, so the next poll opens and
	// imports what the guest shows as new. Counters stay.
	void reset_imports();

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
	// A primary frame held back until its buffer's writers are done (docs/design.md, "Fences").
	struct PendingFrame {
		vgpu::PlaneInfo plane;
		PlaneKey key;
		std::shared_ptr<Import> imported;        // a cached import, or the shown buffer drawn into
		std::optional<vgpu::GuestBuffer> opened; // a buffer opened but not imported yet
		bool content_only = false;               // the shown buffer itself, drawn into again
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
	void show_primary(const vgpu::PlaneInfo &plane, std::shared_ptr<Import> buffer, Changes &changes);
	void reject(int idx, const PlaneKey &key, const vgpu::PlaneInfo &plane, const std::string &why);
	Result<std::shared_ptr<Import>> import_opened(const vgpu::PlaneInfo &plane, vgpu::GuestBuffer buffer);
	Result<std::shared_ptr<Import>> lookup_or_import(const vgpu::PlaneInfo &plane);
	std::optional<uint64_t> content_hash() const;
	std::optional<vgpu::RowSpan> rows_since_copy();

	uint32_t head_;
	vgpu::Source &source_;
	Importer importer_;
	TrackerOptions options_;
	LruCache<PlaneKey, std::shared_ptr<Import>, PlaneKeyHash> cache_;
	ShownPlane primary_, cursor_;
	HeadStats stats_;
	uint64_t cursor_generation_ = 0;
	uint64_t last_damage_ = 0;
	uint64_t copied_damage_ = 0; // the damage count the shown buffer was last refreshed at
	std::optional<uint64_t> last_hash_;
	std::optional<PendingFrame> pending_;
	// Per plane (index 0 primary, 1 cursor): the last bad plane, so it is logged once per bad
	// generation, and whether the last query failed, so a failing device is logged once.
	std::optional<PlaneKey> last_bad_[2];
	bool query_failing_[2] = {false, false};
};

// The tracker of the core's own tests and tools: imports as the ImportedBuffer interface.
using Importer = BasicImporter<ImportedBuffer>;
using ShownPlane = BasicShownPlane<ImportedBuffer>;
using HeadTracker = BasicHeadTracker<ImportedBuffer>;
extern template class BasicHeadTracker<ImportedBuffer>;

template <Imported Import>
BasicHeadTracker<Import>::BasicHeadTracker(uint32_t head, vgpu::Source &source, Importer importer,
                                           TrackerOptions options)
    : head_(head), source_(source), importer_(std::move(importer)), options_(options), cache_(options.cache_bound) {
	stats_.head = head;
}

template <Imported Import> Changes BasicHeadTracker<Import>::poll() {
	if (!source_.connected(head_)) return stats_.connected ? disconnect() : Changes{};
	Changes changes;
	poll_plane(vgpu::PlaneType::primary, changes);
	poll_plane(vgpu::PlaneType::cursor, changes);
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
}

template <Imported Import> Changes BasicHeadTracker<Import>::disconnect() {
	Changes changes;
	changes.frame = primary_.visible();
	changes.cursor_image = cursor_.visible();
	primary_ = {};
	cursor_ = {};
	cache_.clear();
	last_hash_.reset();
	pending_.reset();
	stats_.connected = false;
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
}

template <Imported Import> void BasicHeadTracker<Import>::reset_imports() {
	primary_ = {};
	cursor_ = {};
	pending_.reset();
	cache_.clear();
	last_hash_.reset();
	last_bad_[0].reset();
	last_bad_[1].reset();
}

template <Imported Import>
Result<std::shared_ptr<Import>> BasicHeadTracker<Import>::import_opened(const vgpu::PlaneInfo &plane,
                                                                        vgpu::GuestBuffer buffer) {
	auto imported = importer_(plane, std::move(buffer));
	if (!imported) return imported.take_error();
	stats_.imports++;
	// The head's import path is its primary's: the cursor goes by whatever a CPU can read.
	if (plane.type == vgpu::PlaneType::primary) stats_.import_path = (*imported)->path();
	stats_.evictions += cache_.put(key_of(plane), *imported);
	return imported;
}

template <Imported Import>
Result<std::shared_ptr<Import>> BasicHeadTracker<Import>::lookup_or_import(const vgpu::PlaneInfo &plane) {
	const PlaneKey key = key_of(plane);
	if (auto *hit = cache_.get(key)) {
		stats_.cache_hits++;
		return *hit;
	}
	auto buffer = source_.open_buffer(plane);
	if (!buffer) return buffer.take_error();
	stats_.buffer_opens++;
	if (auto bad = validate_backing(plane, buffer->byte_size)) return fail(bad->reason);
	return import_opened(plane, std::move(*buffer));
}

template <Imported Import> int BasicHeadTracker<Import>::fence_timeout_in_ms() const {
	if (!pending_ || pending_->late) return -1;
	const uint64_t due = pending_->since_ms + options_.fence_timeout_ms, now = monotonic_ms();
	return due > now ? static_cast<int>(due - now) : 0;
}

template <Imported Import> bool BasicHeadTracker<Import>::wait_for_fences(int fd, PendingFrame &frame) {
	if (fd < 0) return false;
	auto fence = read_fence(fd);
	if (!fence) {
		VLOG_DEBUG("head %u: cannot read the buffer's fences (%s); showing it", head_, fence.error().c_str());
		return false;
	}
	if (!fence->fd) return false;
	frame.fence = std::move(fence->fd);
	frame.since_ms = monotonic_ms();
	stats_.fence_waits++;
	VLOG_DEBUG("head %u: buffer id %" PRIu64 " has write fences in flight; waiting (%s)", head_, frame.plane.buffer_id,
	           fence->sync_file ? "sync file" : "polling the dma-buf");
	pending_ = std::move(frame);
	return true;
}

template <Imported Import> void BasicHeadTracker<Import>::resolve_pending(Changes &changes) {
	PendingFrame &p = *pending_;
	if (!fence_signalled(p.fence.get())) {
		if (!p.late && monotonic_ms() - p.since_ms >= options_.fence_timeout_ms) {
			p.late = true;
			stats_.fence_timeouts++;
			VLOG_ERROR("head %u: buffer id %" PRIu64 ": its write fence has not signalled in %u ms; keeping the last "
			           "good frame until it does",
			           head_, p.plane.buffer_id, options_.fence_timeout_ms);
		}
		return;
	}
	if (p.late) VLOG_INFO("head %u: buffer id %" PRIu64 ": the late fence signalled", head_, p.plane.buffer_id);
	PendingFrame done = std::move(p);
	pending_.reset();
	if (done.content_only) {
		primary_.buffer->content_changed(rows_since_copy());
		changes.frame = true;
		return;
	}
	show_new_primary(done, changes);
}

template <Imported Import> void BasicHeadTracker<Import>::show_new_primary(PendingFrame &frame, Changes &changes) {
	std::shared_ptr<Import> buffer = std::move(frame.imported);
	if (!buffer) {
		auto imported = import_opened(frame.plane, std::move(*frame.opened));
		if (!imported) return reject(0, frame.key, frame.plane, imported.error());
		buffer = std::move(*imported);
	}
	show_primary(frame.plane, std::move(buffer), changes);
}

template <Imported Import>
void BasicHeadTracker<Import>::reject(int idx, const PlaneKey &key, const vgpu::PlaneInfo &plane,
                                      const std::string &why) {
	last_bad_[idx] = key;
	stats_.rejected++;
	VLOG_ERROR("head %u: %s plane rejected (buffer id %" PRIu64 "): %s; keeping the last good frame", head_,
	           vgpu::to_string(plane.type), plane.buffer_id, why.c_str());
}

template <Imported Import> void BasicHeadTracker<Import>::new_primary(const vgpu::PlaneInfo &plane, Changes &changes) {
	const PlaneKey key = key_of(plane);
	PendingFrame frame{plane, key};
	int fd = -1;
	if (auto *hit = cache_.get(key)) {
		stats_.cache_hits++;
		frame.imported = *hit;
		fd = frame.imported->dmabuf_fd();
	} else {
		auto buffer = source_.open_buffer(plane);
		if (!buffer) return reject(0, key, plane, buffer.error());
		stats_.buffer_opens++;
		if (auto bad = validate_backing(plane, buffer->byte_size)) return reject(0, key, plane, bad->reason);
		if (buffer->kind == vgpu::BufferKind::dmabuf) fd = buffer->fd.get();
		frame.opened = std::move(*buffer);
	}
	last_bad_[0].reset();
	// Nothing reads the buffer (not even the import's first copy) before its writers are done.
	if (wait_for_fences(fd, frame)) return;
	show_new_primary(frame, changes);
}

template <Imported Import>
void BasicHeadTracker<Import>::show_primary(const vgpu::PlaneInfo &plane, std::shared_ptr<Import> buffer,
                                            Changes &changes) {
	ShownPlane &shown = primary_;
	const bool was_visible = shown.visible();
	const vgpu::PlaneInfo old = shown.info;
	shown.info = plane;
	shown.buffer = std::move(buffer);
	// A buffer seen before may have been drawn into since: a copy import must refresh, all of it.
	shown.buffer->content_changed(std::nullopt);
	last_damage_ = copied_damage_ = source_.damage_seq(head_);
	last_hash_.reset();
	if (options_.watch_content || source_.needs_content_watch(head_)) last_hash_ = content_hash();
	changes.frame = true;
	if (!was_visible || old.width != plane.width || old.height != plane.height) {
		changes.mode = true;
		stats_.width = plane.width;
		stats_.height = plane.height;
	}
}

template <Imported Import> std::optional<uint64_t> BasicHeadTracker<Import>::content_hash() const {
	if (!primary_.visible() || !primary_.buffer->cpu_data()) return std::nullopt;
	return hash_plane(primary_.buffer->cpu_data() + primary_.info.offset, primary_.info);
}

// The primary's rows drawn into since it was last refreshed, as the source tells them (docs/design.md,
// "Damage rows"); all of them when it cannot, or when content is found by hashing.
template <Imported Import> std::optional<vgpu::RowSpan> BasicHeadTracker<Import>::rows_since_copy() {
	const uint64_t damage = source_.damage_seq(head_);
	std::optional<vgpu::RowSpan> rows;
	if (!options_.watch_content && !source_.needs_content_watch(head_))
		rows = source_.damage_rows(head_, copied_damage_);
	copied_damage_ = damage;
	return rows;
}

template <Imported Import> void BasicHeadTracker<Import>::poll_plane(vgpu::PlaneType type, Changes &changes) {
	const int idx = type == vgpu::PlaneType::cursor ? 1 : 0;
	ShownPlane &shown = idx ? cursor_ : primary_;
	const char *what = vgpu::to_string(type);

	auto queried = source_.query(head_, type);
	if (!queried) {
		stats_.query_errors++;
		if (!query_failing_[idx])
			VLOG_ERROR("head %u: querying the %s plane failed: %s; keeping the last good frame", head_, what,
			           queried.error().c_str());
		query_failing_[idx] = true;
		return;
	}
	query_failing_[idx] = false;
	stats_.connected = true;
	vgpu::PlaneInfo plane = *queried;

	if (!plane.enabled()) {
		last_bad_[idx].reset();
		if (!idx) pending_.reset();
		if (shown.visible()) {
			VLOG_INFO("head %u: %s plane %s", head_, what,
			          plane.state == vgpu::PlaneState::unsupported ? "unsupported" : "disabled");
			shown = {};
			shown.info = plane;
			(idx ? changes.cursor_image : changes.frame) = true;
			if (!idx) last_hash_.reset();
		}
		return;
	}

	if (type == vgpu::PlaneType::cursor) plane = normalize_hotspot(plane);
	const PlaneKey key = key_of(plane);

	if (shown.visible() && key_of(shown.info) == key) {
		last_bad_[idx].reset();
		if (idx) {
			const vgpu::PlaneInfo &old = shown.info;
			if (old.x_pos != plane.x_pos || old.y_pos != plane.y_pos || old.x_hot != plane.x_hot ||
			    old.y_hot != plane.y_hot) {
				changes.cursor_position = true;
				shown.info = plane;
			}
			return;
		}
		// Back on the shown buffer: a new one still waiting for its fences is not wanted now.
		if (pending_ && !pending_->content_only) pending_.reset();
		// Same buffer: only a damage notice or (when watching) a changed hash means new content.
		const uint64_t damage = source_.damage_seq(head_);
		bool content = damage != last_damage_;
		last_damage_ = damage;
		if (options_.watch_content || source_.needs_content_watch(head_)) {
			auto h = content_hash();
			if (h != last_hash_) content = content || last_hash_.has_value();
			last_hash_ = h;
		}
		if (pending_) return resolve_pending(changes); // new damage joins the frame already waiting
		if (!content) return;
		PendingFrame frame{plane, key, shown.buffer, std::nullopt, true};
		if (wait_for_fences(shown.buffer->dmabuf_fd(), frame)) return;
		shown.buffer->content_changed(rows_since_copy());
		changes.frame = true;
		return;
	}

	if (!idx && pending_) {
		if (!pending_->content_only && pending_->key == key) return resolve_pending(changes);
		pending_.reset(); // the guest moved on: the frame that waited is not wanted any more
	}
	if (last_bad_[idx] == key) return; // this bad generation was already logged and counted
	if (auto bad = validate_plane(plane)) {
		last_bad_[idx] = key;
		stats_.rejected++;
		VLOG_ERROR("head %u: %s plane rejected: %s; keeping the last good frame", head_, what, bad->reason.c_str());
		return;
	}
	if (!idx) return new_primary(plane, changes);
	auto imported = lookup_or_import(plane);
	if (!imported) return reject(idx, key, plane, imported.error());
	last_bad_[idx].reset();
	const bool was_visible = shown.visible();
	const vgpu::PlaneInfo old = shown.info;
	shown.info = plane;
	shown.buffer = std::move(*imported);
	changes.cursor_image = true;
	if (!was_visible || old.x_pos != plane.x_pos || old.y_pos != plane.y_pos) changes.cursor_position = true;
}

} // namespace vscanout::core
