#include "compositor/head.hpp"

#include <drm_fourcc.h>

#include <algorithm>
#include <string>
#include <utility>

#include "compositor/server.hpp"
#include "compositor/device_cursor.hpp"
#include "compositor/scanout.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"

namespace vscanout::compositor {
namespace {

// Until the guest programs a mode, a head shows "no signal" at this size.
constexpr uint32_t kDefaultWidth = 1024, kDefaultHeight = 768;

bool output_is_ours(wlr_output *o) { return wlr_output_is_headless(o) || wlr_output_is_wl(o) || wlr_output_is_x11(o); }

// The output's size once `pending` is committed (a mode set may be waiting).
std::pair<uint32_t, uint32_t> size_after_commit(const wlr_output *o, const wlr_output_state &pending) {
	int32_t w = o->width, h = o->height;
	if (pending.committed & WLR_OUTPUT_STATE_MODE) {
		if (pending.mode_type == WLR_OUTPUT_STATE_MODE_FIXED && pending.mode) {
			w = pending.mode->width;
			h = pending.mode->height;
		} else if (pending.mode_type == WLR_OUTPUT_STATE_MODE_CUSTOM) {
			w = pending.custom_mode.width;
			h = pending.custom_mode.height;
		}
	}
	return {static_cast<uint32_t>(std::max(w, 0)), static_cast<uint32_t>(std::max(h, 0))};
}

// A state to commit: what waits in `pending` (a mode, enabling), plus a buffer if given.
struct CommitState {
	wlr_output_state state;
	CommitState(const wlr_output_state &pending, wlr_buffer *buffer) {
		wlr_output_state_init(&state);
		wlr_output_state_copy(&state, &pending);
		if (buffer) wlr_output_state_set_buffer(&state, buffer);
	}
	~CommitState() { wlr_output_state_finish(&state); }
	CommitState(const CommitState &) = delete;
	CommitState &operator=(const CommitState &) = delete;
};

} // namespace

Head::Head(Server &server, uint32_t id, core::TrackerOptions options)
    : server_(server), id_(id),
      tracker_(
          id, server.source(),
          [this](const vgpu::PlaneInfo &plane,
                 vgpu::GuestBuffer buffer) -> Result<std::shared_ptr<render::GuestImport>> {
	          if (!server_.vulkan_ready()) return fail("no Vulkan device (the last one was lost)");
	          auto policy = server_.import_policy(tracker_.stats(), plane.type == vgpu::PlaneType::cursor);
	          auto imported = render::GuestImport::create(server_.vulkan(), plane, std::move(buffer), policy);
	          if (!imported && server_.vulkan().lost()) server_.device_lost();
	          return imported;
          },
          options),
      fence_watch_(wl_display_get_event_loop(server.display()), [this] { poll(); }) {
	wlr_output_state_init(&pending_);
}

Head::~Head() {
	wlr_output_state_finish(&pending_);
	if (!output_) return;
	if (output_is_ours(output_)) {
		wlr_output *o = output_;
		forget_output();
		wlr_output_destroy(o);
	} else {
		release_output();
	}
}

void Head::forget_output() {
	frame_.disconnect();
	needs_frame_.disconnect();
	request_state_.disconnect();
	commit_.disconnect();
	destroy_.disconnect();
	clear_pending();
	targets_.clear();
	cursors_.set_device(nullptr, false); // the cursor plane is cleared, a parent's output cursor destroyed
	if (front_) wlr_buffer_unlock(front_);
	front_ = nullptr;
	drop_scanout_buffers();
	output_ = nullptr;
}

wlr_output *Head::release_output() {
	wlr_output *o = output_;
	if (!o) return nullptr;
	forget_output(); // the cursor plane is cleared here, while the output still has its CRTC
	wlr_output_state off;
	wlr_output_state_init(&off);
	wlr_output_state_set_enabled(&off, false);
	wlr_output_commit_state(o, &off);
	wlr_output_state_finish(&off);
	if (kms_) {
		// Clients saw it as HEAD-<id>; a free connector goes back to its own name (wlroots
		// renames only an output without a global).
		wlr_output_destroy_global(o);
		wlr_output_set_name(o, connector_.c_str());
	}
	return o;
}

void Head::attach_output(wlr_output *o) {
	output_ = o;
	kms_ = !output_is_ours(o);
	connector_ = o->name;
	const std::string name = "HEAD-" + std::to_string(id_);
	wlr_output_set_name(o, name.c_str());
	std::string desc = "vscanout " + server_.source().name() + " guest head " + std::to_string(id_);
	if (kms_) desc += " on " + connector_;
	wlr_output_set_description(o, desc.c_str());
	const std::string title = "vscanout — " + server_.source().name() + " " + name;
	if (wlr_output_is_wl(o)) {
		wlr_wl_output_set_title(o, title.c_str());
		wlr_wl_output_set_app_id(o, "vscanout"); // a parent's window rules can match it
	}
	if (wlr_output_is_x11(o)) wlr_x11_output_set_title(o, title.c_str());
	// A connector given back by a head that went away keeps the renderer it was set up with.
	if (!o->allocator && !wlr_output_init_render(o, server_.allocator(), server_.renderer()))
		wlr_log(WLR_ERROR, "%s: cannot set up rendering for this output", name.c_str());

	// KMS has a cursor plane. Headless has none, and nested the parent's pointer shows the guest
	// cursor only while the guest pointer is absolute (update_cursor): there the guest cursor is
	// drawn by our renderer.
	cursors_.set_device(kms_ ? KmsCursorPath::create(o, server_.allocator(), tracker_.stats()) : nullptr, true);
	tracker_.stats().cursor_path = cursors_.current().name();

	frame_.connect(&o->events.frame, [this](void *) { on_frame(); });
	needs_frame_.connect(&o->events.needs_frame, [this](void *) {
		// X11 Expose: the backend lost what it showed, draw again. KMS asks for a commit after
		// a cursor change: the frame on screen is committed again, not redrawn (on_frame). A
		// screencopy client asks on every copy request: one that streams and has the last
		// commit waits for damage, so that request is served by doing nothing.
		if (!output_ || captures_served()) return;
		if (!kms_) dirty_ = true;
		wlr_output_schedule_frame(output_);
	});
	// A nested window resized by the user (the backend asks for the window's size as the mode):
	// the next frame takes it, drawn again scaled to the new size.
	request_state_.connect(&o->events.request_state, [this](void *data) {
		const auto *event = static_cast<const wlr_output_event_request_state *>(data);
		if (!output_ || !(event->state->committed & WLR_OUTPUT_STATE_MODE)) return;
		if (event->state->mode_type == WLR_OUTPUT_STATE_MODE_CUSTOM)
			wlr_output_state_set_custom_mode(&pending_, event->state->custom_mode.width,
			                                 event->state->custom_mode.height, event->state->custom_mode.refresh);
		else if (event->state->mode)
			wlr_output_state_set_mode(&pending_, event->state->mode);
		dirty_ = true;
		wlr_output_schedule_frame(output_);
	});
	// A new size on screen: draw the guest frame again, scaled to it, and tell the guest when it
	// is a window's new size (a QEMU guest may take it as its new mode).
	commit_.connect(&o->events.commit, [this](void *data) {
		const auto *event = static_cast<const wlr_output_event_commit *>(data);
		// Connected before any screencopy frame's listener: runs before wlroots serves them.
		if (output_ && (event->state->committed & WLR_OUTPUT_STATE_BUFFER)) server_.capture_demand().committed(output_);
		if (!output_ || !(event->state->committed & WLR_OUTPUT_STATE_MODE)) return;
		dirty_ = true;
		wlr_output_schedule_frame(output_);
		const auto w = static_cast<uint32_t>(output_->width), h = static_cast<uint32_t>(output_->height);
		if (!kms_ && (w != mode_w_ || h != mode_h_)) server_.source().window_resized(id_, w, h);
	});
	destroy_.connect(&o->events.destroy, [this](void *) { on_output_destroy(); });
	mode_w_ = mode_h_ = 0;
	apply_mode();
	// Kiosk: offer the guest the monitor's own preferred mode (VFIO: its EDID; QEMU: SetUIInfo).
	if (kms_)
		if (const wlr_output_mode *m = wlr_output_preferred_mode(o))
			server_.source().window_resized(id_, static_cast<uint32_t>(m->width), static_cast<uint32_t>(m->height));
	wlr_output_state_set_enabled(&pending_, true);
	dirty_ = true;
	if (!draw_and_commit()) wlr_log(WLR_ERROR, "%s: first commit failed", name.c_str());
	if (cursors_.device()) update_cursor(true, true);
	if (kms_)
		wlr_log(WLR_INFO, "%s: on connector %s, mode %dx%d@%.3f Hz, %s cursor", name.c_str(), connector_.c_str(),
		        o->width, o->height, o->refresh / 1000.0, cursors_.current().name());
	else
		wlr_log(WLR_INFO, "%s: %dx%d, %s cursor", name.c_str(), o->width, o->height, cursors_.current().name());
}

void Head::on_output_destroy() {
	if (kms_)
		wlr_log(WLR_INFO, "HEAD-%u: connector %s went away; the head waits for another", id_, connector_.c_str());
	else
		wlr_log(WLR_INFO, "HEAD-%u: output closed; the head stays off", id_);
	forget_output();
	server_.output_closed(*this);
}

void Head::apply_mode() {
	const auto &p = tracker_.primary();
	uint32_t w = p.visible() ? p.info.width : (mode_w_ ? mode_w_ : kDefaultWidth);
	uint32_t h = p.visible() ? p.info.height : (mode_h_ ? mode_h_ : kDefaultHeight);
	if (w == mode_w_ && h == mode_h_) return;
	mode_w_ = w;
	mode_h_ = h;
	dirty_ = true;
	if (kms_) {
		choose_kms_mode();
		return;
	}
	wlr_output_state_set_custom_mode(&pending_, static_cast<int32_t>(w), static_cast<int32_t>(h), 0);
	mode_pending_ = true;
}

void Head::choose_kms_mode() {
	// A connector keeps the monitor's mode and the guest frame is scaled into it, unless
	// --mode guest asks for the guest's own mode and the connector lists it. A connector with
	// no preferred mode (a forced-on virtual connector) takes the guest's mode where listed,
	// else its first.
	const auto &p = tracker_.primary();
	wlr_output_mode *preferred = nullptr, *guest = nullptr, *first = nullptr;
	wlr_output_mode *m;
	wl_list_for_each(m, &output_->modes, link) {
		if (!first) first = m;
		if (m->preferred && !preferred) preferred = m;
		if (p.visible() && m->width == static_cast<int32_t>(p.info.width) &&
		    m->height == static_cast<int32_t>(p.info.height) && (!guest || m->refresh > guest->refresh))
			guest = m;
	}
	const char *why = "the guest's";
	wlr_output_mode *pick = server_.options().mode == ModeChoice::guest ? guest : nullptr;
	if (!pick && preferred) pick = preferred, why = "preferred";
	if (!pick && guest) pick = guest, why = "the guest's (no preferred mode)";
	if (!pick && first) pick = first, why = "the first listed (no preferred mode)";
	if (!pick) {
		// No modes at all: ask for the guest's size.
		wlr_output_state_set_custom_mode(&pending_, static_cast<int32_t>(mode_w_), static_cast<int32_t>(mode_h_), 0);
		mode_pending_ = true;
		return;
	}
	if (pick == output_->current_mode && output_->enabled) return;
	wlr_log(WLR_INFO, "HEAD-%u (%s): mode %dx%d@%.3f Hz, %s", id_, connector_.c_str(), pick->width, pick->height,
	        pick->refresh / 1000.0, why);
	wlr_output_state_set_mode(&pending_, pick);
	mode_pending_ = true;
}

void Head::poll() {
	core::Changes changes = tracker_.poll();
	fence_watch_.update(tracker_);
	if (!changes.any() || !output_) return;
	if (changes.mode) apply_mode();
	// A guest buffer we keep for scan-out must not outlive the plane (a device going away
	// waits for its fds to close).
	if (!tracker_.primary().visible()) drop_scanout_buffers();
	// A new frame size moves and scales the cursor with the frame.
	update_cursor(changes.cursor_image || changes.mode, changes.cursor_position || changes.mode);
	if (changes.frame || changes.mode) dirty_ = true;
	if (dirty_) wlr_output_schedule_frame(output_);
}

render::FrameMap Head::frame_map() const {
	const render::ShownPlane &p = tracker_.primary();
	if (!p.visible() || !output_) return {0, 0, 0, 0};
	return {p.info.width, p.info.height, static_cast<uint32_t>(output_->width), static_cast<uint32_t>(output_->height)};
}

void Head::repaint() {
	if (!output_) return;
	dirty_ = true;
	wlr_output_schedule_frame(output_);
}

void Head::redraw() { repaint(); }

void Head::drop_gpu_state() {
	tracker_.reset_imports();
	fence_watch_.update(tracker_);
	drop_scanout_buffers();
	targets_.clear();
	repaint();
}

void Head::gpu_state_back() {
	output_dmabuf_ = true;    // the new device may take the output's dma-bufs again
	tracker_.reset_imports(); // imports refused while there was no device are tried again
	if (!output_) return;     // a head without an output is polled once it has one
	poll();
	repaint();
}

void Head::cursor_path_changed(bool redraw) {
	if (redraw) dirty_ = true; // the frame starts or stops drawing the cursor
	tracker_.stats().cursor_path = cursors_.current().name();
}

void Head::update_cursor(bool image, bool position) {
	// Nested, with a guest whose pointer is absolute (QEMU with a tablet): the parent's pointer
	// is the guest's pointer, so it takes the guest cursor image (the parent places it) and the
	// frame shows none. Otherwise the guest cursor is drawn into the frame where the guest puts it.
	if (!kms_) {
		const bool want = (wlr_output_is_wl(output_) || wlr_output_is_x11(output_)) && server_.source().takes_input() &&
		                  server_.source().pointer_absolute(id_);
		if (want != (cursors_.device() != nullptr)) {
			cursor_path_changed(cursors_.set_device(
			    want ? std::make_unique<ParentCursorPath>(output_, tracker_.stats()) : nullptr, true));
			image = want;
		}
	}
	const render::ShownPlane &c = tracker_.cursor();
	const render::ShownPlane &p = tracker_.primary();
	// The frame's place on the output once the pending state is committed: the cursor follows
	// its scale.
	const auto [mode_w, mode_h] = size_after_commit(output_, pending_);
	const render::FrameMap map =
	    p.visible() ? render::FrameMap(p.info.width, p.info.height, mode_w, mode_h) : render::FrameMap(0, 0, 0, 0);
	if (image) cursor_path_changed(cursors_.offer_image(c, p, map, output_->name));
	CursorPath &path = cursors_.current();
	if (path.in_frame()) {
		if (image || position) dirty_ = true;
	} else {
		// Placed again with every change of the head (a new frame may have moved it); it takes
		// effect with the next commit.
		if (image || position) device_commit_ = true;
		path.move(c, map);
	}
}

void Head::on_frame() {
	// A frame is drawn only when the guest changed something, or when wlroots needs one
	// (a screencopy client waits for a commit; KMS applies a cursor change with a commit).
	if (dirty_) {
		draw_and_commit();
		return;
	}
	if (!output_->needs_frame || captures_served()) return;
	device_commit_ = false;
	// The frame on screen again, undrawn; not while a screencopy client holds a render lock
	// (wlroots then takes rendered buffers only).
	if (kms_ && front_ && output_->attach_render_locks == 0 && pending_.committed == 0)
		recommit();
	else
		draw_and_commit();
}

bool Head::captures_served() {
	// Only screencopy frames that wait for damage and have the last commit already (a streaming
	// client such as wayvnc over a static guest): no commit without new content would serve them,
	// so none is made (docs/design.md, "Screen capture and the refresh rule"). A device cursor
	// change (KMS plane) still needs its commit, and an X11 Expose its redraw.
	if (device_commit_ || wlr_output_is_x11(output_) || !server_.capture_demand().only_satisfied_frames_wait(output_))
		return false;
	output_->needs_frame = false; // asked and answered: a later request asks again
	return true;
}

bool Head::recommit() {
	// The frame on screen again, undrawn: KMS takes the cursor plane's new state with it.
	CommitState commit(pending_, front_); // nothing pending (on_frame)
	if (!wlr_output_commit_state(output_, &commit.state)) {
		wlr_log(WLR_ERROR, "%s: commit failed", output_->name);
		return false;
	}
	tracker_.stats().commits++;
	return true;
}

render::OutputTarget *Head::target_for(wlr_buffer *buffer, const render::TargetDesc &desc, std::string *error) {
	auto it = targets_.find(buffer);
	if (it != targets_.end() && it->second->target->matches(desc)) return it->second->target.get();
	auto t = render::OutputTarget::create(server_.vulkan(), desc);
	if (!t) {
		if (error)
			*error = t.error();
		else
			wlr_log(WLR_ERROR, "%s: cannot render into the output buffer: %s", output_->name, t.error().c_str());
		return nullptr;
	}
	auto entry = std::make_unique<Target>();
	entry->target = std::move(*t);
	entry->destroy.connect(&buffer->events.destroy, [this, buffer](void *) { targets_.erase(buffer); });
	render::OutputTarget *raw = entry->target.get();
	targets_[buffer] = std::move(entry);
	return raw;
}

void Head::drop_scanout_buffers() {
	for (auto &[imp, buffer] : scanout_buffers_) wlr_buffer_drop(buffer);
	scanout_buffers_.clear();
}

void Head::clear_pending() {
	wlr_output_state_finish(&pending_);
	wlr_output_state_init(&pending_);
}

wlr_buffer *Head::scanout_buffer(const std::shared_ptr<render::GuestImport> &buffer) {
	for (auto &[imp, b] : scanout_buffers_)
		if (imp == buffer.get()) return b;
	wlr_buffer *b = make_scanout_buffer(buffer);
	if (!b) return nullptr;
	constexpr size_t kKept = 4; // a page-flip ring or two; KMS keeps its own lock on what it shows
	if (scanout_buffers_.size() >= kKept) {
		wlr_buffer_drop(scanout_buffers_.front().second);
		scanout_buffers_.erase(scanout_buffers_.begin());
	}
	scanout_buffers_.emplace_back(buffer.get(), b);
	return b;
}

bool Head::try_direct_scanout() {
	// KMS only, the frame exactly the mode, nothing to draw over it, no mode set waiting (a
	// refused test would roll that back too), and a dma-buf the driver has not refused before.
	// wlroots refuses a buffer of our own while a screencopy client holds a render lock.
	if (!kms_ || !wlr_output_is_direct_scanout_allowed(output_) ||
	    (pending_.committed & (WLR_OUTPUT_STATE_MODE | WLR_OUTPUT_STATE_ENABLED)))
		return false;
	const render::ShownPlane &p = tracker_.primary();
	if (!p.visible() || (cursors_.current().in_frame() && tracker_.cursor().visible())) return false;
	if (static_cast<int32_t>(p.info.width) != output_->width || static_cast<int32_t>(p.info.height) != output_->height)
		return false;
	if (p.buffer->dmabuf_fd() < 0) return false;
	const auto config =
	    std::make_tuple(p.info.drm_format, p.info.drm_format_mod, p.info.width, p.info.height, p.info.stride);
	if (scanout_refused_.count(config)) return false;
	wlr_buffer *buffer = scanout_buffer(p.buffer);
	if (!buffer) return false;
	CommitState commit(pending_, buffer);
	if (!wlr_output_test_state(output_, &commit.state)) {
		scanout_refused_.insert(config);
		wlr_log(WLR_INFO, "%s: %s cannot scan out the guest buffer (%ux%u, format 0x%08x, modifier 0x%llx); composing",
		        output_->name, connector_.c_str(), p.info.width, p.info.height, p.info.drm_format,
		        static_cast<unsigned long long>(p.info.drm_format_mod));
		return false;
	}
	if (!commit_frame(commit.state, wlr_buffer_lock(buffer))) return false;
	tracker_.stats().scanouts++;
	return true;
}

bool Head::draw_without_device() {
	CommitState commit(pending_, nullptr);
	wlr_buffer *bb = nullptr;
	if (wlr_output_configure_primary_swapchain(output_, &commit.state, &output_->swapchain))
		bb = wlr_swapchain_acquire(output_->swapchain, nullptr);
	if (!bb) return false;
	void *data = nullptr;
	uint32_t format = 0;
	size_t stride = 0;
	if (!wlr_buffer_begin_data_ptr_access(bb, WLR_BUFFER_DATA_PTR_ACCESS_WRITE, &data, &format, &stride)) {
		wlr_buffer_unlock(bb);
		return false;
	}
	// The no-signal background, RGB (32, 32, 48), without its text (the font is the shader's).
	const bool bgr = format == DRM_FORMAT_XBGR8888 || format == DRM_FORMAT_ABGR8888;
	const uint32_t px = bgr ? 0xff302020u : 0xff202030u;
	for (int y = 0; y < bb->height; y++) {
		auto *row = reinterpret_cast<uint32_t *>(static_cast<uint8_t *>(data) + static_cast<size_t>(y) * stride);
		std::fill(row, row + bb->width, px);
	}
	wlr_buffer_end_data_ptr_access(bb);
	wlr_output_state_set_buffer(&commit.state, bb);
	if (!kms_) wlr_buffer_unlock(bb);
	return commit_frame(commit.state, kms_ ? bb : nullptr);
}

bool Head::draw_and_commit() {
	if (!server_.vulkan_ready()) return draw_without_device();
	if (try_direct_scanout()) return true;
	// A buffer of the output's swapchain, sized for the mode the commit sets (if it sets one).
	CommitState commit(pending_, nullptr);
	wlr_buffer *bb = nullptr;
	if (wlr_output_configure_primary_swapchain(output_, &commit.state, &output_->swapchain))
		bb = wlr_swapchain_acquire(output_->swapchain, nullptr);
	if (!bb) {
		wlr_log(WLR_ERROR, "%s: cannot get a back buffer", output_->name);
		return false;
	}
	// Straight into the buffer where it is a dma-buf the device imports (the DRM backend's dumb
	// buffers), else through its CPU mapping (docs/design.md, "Rendering").
	render::TargetDesc desc;
	desc.width = static_cast<uint32_t>(bb->width);
	desc.height = static_cast<uint32_t>(bb->height);
	render::OutputTarget *target = nullptr;
	wlr_dmabuf_attributes dmabuf{};
	if (output_dmabuf_ && wlr_buffer_get_dmabuf(bb, &dmabuf) && dmabuf.n_planes == 1) {
		desc.drm_format = dmabuf.format;
		desc.stride = dmabuf.stride[0];
		desc.dmabuf_fd = dmabuf.fd[0];
		desc.dmabuf_offset = dmabuf.offset[0];
		desc.modifier = dmabuf.modifier;
		std::string why;
		target = target_for(bb, desc, &why);
		if (!target) {
			output_dmabuf_ = false; // the same for every buffer of this output: asked once
			wlr_log(WLR_INFO, "%s: not drawing into the output's dma-bufs (%s); using their CPU mapping", output_->name,
			        why.c_str());
		}
	}
	bool mapped = false;
	if (!target) {
		desc = render::TargetDesc{};
		size_t stride = 0;
		void *data = nullptr;
		if (!wlr_buffer_begin_data_ptr_access(bb, WLR_BUFFER_DATA_PTR_ACCESS_WRITE, &data, &desc.drm_format, &stride)) {
			wlr_log(WLR_ERROR, "%s: the output buffer is neither an importable dma-buf nor CPU-mapped", output_->name);
			wlr_buffer_unlock(bb);
			return false;
		}
		mapped = true;
		desc.data = data;
		desc.stride = static_cast<uint32_t>(stride);
		desc.width = static_cast<uint32_t>(bb->width);
		desc.height = static_cast<uint32_t>(bb->height);
		target = target_for(bb, desc);
	}

	render::FrameDesc frame;
	const render::ShownPlane &p = tracker_.primary();
	const render::ShownPlane &c = tracker_.cursor();
	if (p.visible()) frame.primary = p.buffer.get();
	if (cursors_.current().in_frame() && c.visible() && frame.primary)
		frame.cursor = render::SoftwareCursor{c.buffer.get(), c.info.x_pos, c.info.y_pos};
	bool ok = false;
	if (target) {
		auto drawn = server_.head_renderer().draw(frame, *target);
		if (drawn)
			ok = true;
		else if (!server_.vulkan().lost()) // a loss is logged once by the context
			wlr_log(WLR_ERROR, "%s: drawing failed: %s", output_->name, drawn.error().c_str());
		tracker_.stats().output_path = render::to_string(target->path());
	}
	if (mapped) wlr_buffer_end_data_ptr_access(bb);
	if (!ok) {
		wlr_buffer_unlock(bb);
		if (server_.vulkan().lost()) server_.device_lost();
		return false;
	}
	tracker_.stats().renders++;
	wlr_output_state_set_buffer(&commit.state, bb);
	// KMS keeps the frame on screen (the lock) for cursor-only commits.
	if (!kms_) wlr_buffer_unlock(bb);
	return commit_frame(commit.state, kms_ ? bb : nullptr);
}

// Commits `state` (what was pending and a buffer); `committed` (locked, or nullptr) becomes the
// frame on screen.
bool Head::commit_frame(const wlr_output_state &state, wlr_buffer *committed) {
	if (!wlr_output_commit_state(output_, &state)) {
		wlr_log(WLR_ERROR, "%s: commit failed", output_->name);
		if (committed) wlr_buffer_unlock(committed);
		return false;
	}
	clear_pending();
	if (front_) wlr_buffer_unlock(front_);
	front_ = committed;
	tracker_.stats().commits++;
	dirty_ = false;
	device_commit_ = false;
	if (mode_pending_) {
		mode_pending_ = false;
		server_.outputs_changed();
	}
	return true;
}

} // namespace vscanout::compositor
