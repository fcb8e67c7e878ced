#include "core/head_tracker.hpp"

#include <time.h>

#include <cinttypes>
#include <cstring>

#include "base/dmabuf_fence.hpp"
#include "base/log.hpp"
#include "core/format.hpp"
#include "core/validate.hpp"

#include <xxhash.h>

namespace vscanout::core {

using vgpu::PlaneInfo;
using vgpu::PlaneType;

namespace {

uint64_t now_ms() {
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

} // namespace

PlaneKey key_of(const PlaneInfo &p) {
	return PlaneKey{p.type,  p.buffer_id, p.drm_format, p.drm_format_mod, p.width, p.height, p.stride, p.size,
	                p.offset, p.region_index};
}

size_t PlaneKeyHash::operator()(const PlaneKey &k) const {
	uint64_t h = 1469598103934665603ull;
	for (uint64_t v : {uint64_t{static_cast<uint32_t>(k.type)}, k.buffer_id, uint64_t{k.drm_format}, k.modifier, uint64_t{k.width}, uint64_t{k.height},
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
	pending_.reset();
	stats_.connected = false;
	if (changes.any()) stats_.generation++;
	if (changes.cursor_image) cursor_generation_++;
	return changes;
}

Result<std::shared_ptr<ImportedBuffer>> HeadTracker::import_opened(const PlaneInfo &plane, vgpu::GuestBuffer buffer) {
	auto imported = importer_(plane, std::move(buffer));
	if (!imported) return imported.take_error();
	stats_.imports++;
	// The head's import path is its primary's: the cursor goes by whatever a CPU can read.
	if (plane.type == PlaneType::primary) stats_.import_path = (*imported)->path();
	stats_.evictions += cache_.put(key_of(plane), *imported);
	return imported;
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
	return import_opened(plane, std::move(*buffer));
}

int HeadTracker::fence_timeout_in_ms() const {
	if (!pending_ || pending_->late) return -1;
	const uint64_t due = pending_->since_ms + options_.fence_timeout_ms, now = now_ms();
	return due > now ? static_cast<int>(due - now) : 0;
}

bool HeadTracker::wait_for_fences(int fd, PendingFrame &frame) {
	if (fd < 0) return false;
	auto fence = read_fence(fd);
	if (!fence) {
		VLOG_DEBUG("head %u: cannot read the buffer's fences (%s); showing it", head_, fence.error().c_str());
		return false;
	}
	if (!fence->fd) return false;
	frame.fence = std::move(fence->fd);
	frame.since_ms = now_ms();
	stats_.fence_waits++;
	VLOG_DEBUG("head %u: buffer id %" PRIu64 " has write fences in flight; waiting (%s)", head_, frame.plane.buffer_id,
	           fence->sync_file ? "sync file" : "polling the dma-buf");
	pending_ = std::move(frame);
	return true;
}

void HeadTracker::resolve_pending(Changes &changes) {
	PendingFrame &p = *pending_;
	if (!fence_signalled(p.fence.get())) {
		if (!p.late && now_ms() - p.since_ms >= options_.fence_timeout_ms) {
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
		primary_.buffer->content_changed();
		changes.frame = true;
		return;
	}
	show_new_primary(done, changes);
}

void HeadTracker::show_new_primary(PendingFrame &frame, Changes &changes) {
	std::shared_ptr<ImportedBuffer> buffer = std::move(frame.imported);
	if (!buffer) {
		auto imported = import_opened(frame.plane, std::move(*frame.opened));
		if (!imported) return reject(0, frame.key, frame.plane, imported.error());
		buffer = std::move(*imported);
	}
	show_primary(frame.plane, std::move(buffer), changes);
}

void HeadTracker::reject(int idx, const PlaneKey &key, const PlaneInfo &plane, const std::string &why) {
	last_bad_[idx] = key;
	stats_.rejected++;
	VLOG_ERROR("head %u: %s plane rejected (buffer id %" PRIu64 "): %s; keeping the last good frame", head_,
	           vgpu::to_string(plane.type), plane.buffer_id, why.c_str());
}

void HeadTracker::new_primary(const PlaneInfo &plane, Changes &changes) {
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

void HeadTracker::show_primary(const PlaneInfo &plane, std::shared_ptr<ImportedBuffer> buffer, Changes &changes) {
	ShownPlane &shown = primary_;
	const bool was_visible = shown.visible();
	const PlaneInfo old = shown.info;
	shown.info = plane;
	shown.buffer = std::move(buffer);
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
		shown.buffer->content_changed();
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
	const PlaneInfo old = shown.info;
	shown.info = plane;
	shown.buffer = std::move(*imported);
	changes.cursor_image = true;
	if (!was_visible || old.x_pos != plane.x_pos || old.y_pos != plane.y_pos) changes.cursor_position = true;
}

} // namespace vscanout::core
