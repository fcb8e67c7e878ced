#include "core/head_tracker.hpp"

#include <cinttypes>
#include <cstring>

#include "base/log.hpp"
#include "core/format.hpp"
#include "core/validate.hpp"

#include <xxhash.h>

namespace vscanout::core {

using vgpu::PlaneInfo;
using vgpu::PlaneType;

PlaneKey key_of(const PlaneInfo &p) {
	return PlaneKey{p.buffer_id, p.drm_format, p.drm_format_mod, p.width, p.height, p.stride, p.size, p.offset,
	                p.region_index};
}

size_t PlaneKeyHash::operator()(const PlaneKey &k) const {
	uint64_t h = 1469598103934665603ull;
	for (uint64_t v : {k.buffer_id, uint64_t{k.drm_format}, k.modifier, uint64_t{k.width}, uint64_t{k.height},
	                   uint64_t{k.stride}, uint64_t{k.size}, k.offset, uint64_t{k.region_index}})
		h = (h ^ v) * 1099511628211ull;
	return static_cast<size_t>(h);
}

HeadTracker::HeadTracker(uint32_t head, vgpu::Source &source, Importer importer, TrackerOptions options)
	: head_(head), source_(source), importer_(std::move(importer)), options_(options), cache_(options.cache_bound) {
	stats_.head = head;
}

Changes HeadTracker::poll() {
	if (!source_.connected(head_)) return stats_.connected ? disconnect() : Changes{};
	Changes changes;
	poll_plane(PlaneType::primary, changes);
	poll_plane(PlaneType::cursor, changes);
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
}

Changes HeadTracker::disconnect() {
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

Result<std::shared_ptr<ImportedBuffer>> HeadTracker::lookup_or_import(const PlaneInfo &plane) {
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

std::optional<uint64_t> HeadTracker::content_hash() const {
	if (!primary_.visible() || !primary_.buffer->cpu_data()) return std::nullopt;
	const PlaneInfo &p = primary_.info;
	const FormatInfo *f = find_format(p.drm_format);
	const uint8_t *base = primary_.buffer->cpu_data() + p.offset;
	const size_t row = size_t{p.width} * f->bytes_per_pixel;
	XXH3_state_t *st = XXH3_createState();
	XXH3_64bits_reset(st);
	for (uint32_t y = 0; y < p.height; y++) XXH3_64bits_update(st, base + size_t{y} * p.stride, row);
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

void HeadTracker::poll_plane(PlaneType type, Changes &changes) {
	const int idx = type == PlaneType::cursor ? 1 : 0;
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
	PlaneInfo plane = *queried;

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

	if (type == PlaneType::cursor) plane = normalize_hotspot(plane);
	const PlaneKey key = key_of(plane);

	if (shown.visible() && key_of(shown.info) == key) {
		last_bad_[idx].reset();
		if (idx) {
			const PlaneInfo &old = shown.info;
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
	const PlaneInfo old = shown.info;
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
