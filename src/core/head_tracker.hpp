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

#include "base/log.hpp"
#include "base/result.hpp"
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

// The hash of a plane's visible pixels (xxHash over each row of width x bytes per pixel).
uint64_t hash_plane(const uint8_t *base, const vgpu::PlaneInfo &p);

template <class Import>
concept Imported = std::derived_from<Import, ImportedBuffer>;

template <Imported Import>
using BasicImporter = std::function<Result<std::shared_ptr<Import>>(const vgpu::PlaneInfo &, vgpu::GuestBuffer)>;

template <Imported Import>
struct BasicShownPlane {
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
};

template <Imported Import>
class BasicHeadTracker {
public:
	using Importer = BasicImporter<Import>;
	using ShownPlane = BasicShownPlane<Import>;

	BasicHeadTracker(uint32_t head, vgpu::Source &source, Importer importer, TrackerOptions options);

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
	Result<std::shared_ptr<Import>> lookup_or_import(const vgpu::PlaneInfo &plane);
	std::optional<uint64_t> content_hash() const;

	uint32_t head_;
	vgpu::Source &source_;
	Importer importer_;
	TrackerOptions options_;
	LruCache<PlaneKey, std::shared_ptr<Import>, PlaneKeyHash> cache_;
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

template <Imported Import>
Changes BasicHeadTracker<Import>::poll() {
	if (!source_.connected(head_)) return stats_.connected ? disconnect() : Changes{};
	Changes changes;
	poll_plane(vgpu::PlaneType::primary, changes);
	poll_plane(vgpu::PlaneType::cursor, changes);
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
}

template <Imported Import>
Changes BasicHeadTracker<Import>::disconnect() {
	Changes changes;
	changes.frame = primary_.visible();
	changes.cursor_image = cursor_.visible();
	primary_ = {};
	cursor_ = {};
	cache_.clear();
	last_hash_.reset();
	stats_.connected = false;
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
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
	if (auto bad = validate_backing(plane, buffer->byte_size))
		return fail(bad->reason);
	auto imported = importer_(plane, std::move(*buffer));
	if (!imported) return imported.take_error();
	stats_.imports++;
	stats_.import_path = (*imported)->path();
	stats_.evictions += cache_.put(key, *imported);
	return imported;
}

template <Imported Import>
std::optional<uint64_t> BasicHeadTracker<Import>::content_hash() const {
	if (!primary_.visible() || !primary_.buffer->cpu_data()) return std::nullopt;
	return hash_plane(primary_.buffer->cpu_data() + primary_.info.offset, primary_.info);
}

template <Imported Import>
void BasicHeadTracker<Import>::poll_plane(vgpu::PlaneType type, Changes &changes) {
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
		// Same buffer: only a damage notice or (when watching) a changed hash means new content.
		const uint64_t damage = source_.damage_seq(head_);
		bool content = damage != last_damage_;
		last_damage_ = damage;
		if (options_.watch_content || source_.needs_content_watch(head_)) {
			auto h = content_hash();
			if (h != last_hash_) content = content || last_hash_.has_value();
			last_hash_ = h;
		}
		if (content) {
			shown.buffer->content_changed();
			changes.frame = true;
		}
		return;
	}

	if (last_bad_[idx] == key) return; // this bad generation was already logged and counted
	if (auto bad = validate_plane(plane)) {
		last_bad_[idx] = key;
		stats_.rejected++;
		VLOG_ERROR("head %u: %s plane rejected: %s; keeping the last good frame", head_, what, bad->reason.c_str());
		return;
	}
	auto imported = lookup_or_import(plane);
	if (!imported) {
		last_bad_[idx] = key;
		stats_.rejected++;
		VLOG_ERROR("head %u: %s plane rejected (buffer id %" PRIu64 "): %s; keeping the last good frame", head_, what,
		           plane.buffer_id, imported.error().c_str());
		return;
	}
	last_bad_[idx].reset();
	const bool was_visible = shown.visible();
	const vgpu::PlaneInfo old = shown.info;
	shown.info = plane;
	shown.buffer = std::move(*imported);
	if (idx) {
		changes.cursor_image = true;
		if (!was_visible || old.x_pos != plane.x_pos || old.y_pos != plane.y_pos) changes.cursor_position = true;
		return;
	}
	// A buffer seen before may have been drawn into since: a copy import must refresh.
	shown.buffer->content_changed();
	last_damage_ = source_.damage_seq(head_);
	last_hash_.reset();
	if (options_.watch_content || source_.needs_content_watch(head_)) last_hash_ = content_hash();
	changes.frame = true;
	if (!was_visible || old.width != plane.width || old.height != plane.height) {
		changes.mode = true;
		stats_.width = plane.width;
		stats_.height = plane.height;
	}
}

} // namespace vscanout::core
