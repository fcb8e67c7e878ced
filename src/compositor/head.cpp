#include "compositor/head.hpp"

#include <drm_fourcc.h>

#include <string>

#include "compositor/server.hpp"
#include "render/import.hpp"

namespace vscanout::compositor {
namespace {

// Until the guest programs a mode, a head shows "no signal" at this size.
constexpr uint32_t kDefaultWidth = 1024, kDefaultHeight = 768;

bool output_is_ours(wlr_output *o) {
	return wlr_output_is_headless(o) || wlr_output_is_wl(o) || wlr_output_is_x11(o);
}

} // namespace

Head::Head(Server &server, uint32_t id, core::TrackerOptions options)
	: server_(server), id_(id),
	  tracker_(id, server.source(),
	           [this](const vgpu::PlaneInfo &plane, vgpu::GuestBuffer buffer)
	               -> Result<std::shared_ptr<core::ImportedBuffer>> {
		           auto policy = server_.import_policy(&tracker_.stats().copies, plane.type == vgpu::PlaneType::cursor);
		           auto imp = render::GuestImport::create(server_.vulkan(), plane, std::move(buffer), policy);
		           if (!imp) return imp.take_error();
		           return std::shared_ptr<core::ImportedBuffer>(std::move(*imp));
	           },
	           options) {}

Head::~Head() {
	frame_.disconnect();
	needs_frame_.disconnect();
	mode_.disconnect();
	destroy_.disconnect();
	targets_.clear();
	if (!output_) return;
	if (hw_cursor_) wlr_output_cursor_destroy(hw_cursor_);
	if (output_is_ours(output_)) {
		wlr_output_destroy(output_);
	} else {
		wlr_output_enable(output_, false);
		wlr_output_commit(output_);
	}
}

void Head::attach_output(wlr_output *o) {
	output_ = o;
	const std::string name = "HEAD-" + std::to_string(id_);
	wlr_output_set_name(o, name.c_str());
	const std::string desc = "vscanout " + server_.source().name() + " guest head " + std::to_string(id_);
	wlr_output_set_description(o, desc.c_str());
	if (wlr_output_is_wl(o)) wlr_wl_output_set_title(o, ("vscanout — " + server_.source().name() + " " + name).c_str());
	if (wlr_output_is_x11(o)) wlr_x11_output_set_title(o, ("vscanout — " + server_.source().name() + " " + name).c_str());
	if (!wlr_output_init_render(o, server_.allocator(), server_.renderer()))
		wlr_log(WLR_ERROR, "%s: cannot set up rendering for this output", name.c_str());

	// wayland/x11 take a cursor image but the parent's pointer places it, and headless has no
	// cursor plane: there the guest cursor is drawn by our renderer. Only KMS moves it for us.
	software_cursor_ = !wlr_output_is_drm(o) || !o->impl->set_cursor || !o->impl->move_cursor;
	tracker_.stats().cursor_path = software_cursor_ ? "software" : "hardware";
	if (!software_cursor_) hw_cursor_ = wlr_output_cursor_create(o);

	frame_.connect(&o->events.frame, [this](void *) { on_frame(); });
	// The backend lost what it showed (an X11 Expose): draw again.
	needs_frame_.connect(&o->events.needs_frame, [this](void *) {
		dirty_ = true;
		if (output_) wlr_output_schedule_frame(output_);
	});
	// A nested window resized by the user: draw the guest frame again, scaled to the new size.
	mode_.connect(&o->events.mode, [this](void *) {
		dirty_ = true;
		if (output_) wlr_output_schedule_frame(output_);
	});
	destroy_.connect(&o->events.destroy, [this](void *) { on_output_destroy(); });
	mode_w_ = mode_h_ = 0;
	apply_mode();
	wlr_output_enable(o, true);
	dirty_ = true;
	if (!draw_and_commit()) wlr_log(WLR_ERROR, "%s: first commit failed", name.c_str());
	wlr_log(WLR_INFO, "%s: %dx%d, %s cursor", name.c_str(), o->width, o->height, software_cursor_ ? "software" : "hardware");
}

void Head::on_output_destroy() {
	wlr_log(WLR_INFO, "HEAD-%u: output closed; the head stays off", id_);
	frame_.disconnect();
	needs_frame_.disconnect();
	mode_.disconnect();
	destroy_.disconnect();
	targets_.clear();
	hw_cursor_ = nullptr; // wlroots destroys output cursors with the output
	output_ = nullptr;
	server_.output_closed(*this);
}

void Head::apply_mode() {
	const auto &p = tracker_.primary();
	uint32_t w = p.visible() ? p.info.width : (mode_w_ ? mode_w_ : kDefaultWidth);
	uint32_t h = p.visible() ? p.info.height : (mode_h_ ? mode_h_ : kDefaultHeight);
	if (w == mode_w_ && h == mode_h_) return;
	mode_w_ = w;
	mode_h_ = h;
	if (wlr_output_is_drm(output_)) return; // KMS keeps the connector's mode; the frame is scaled into it
	wlr_output_set_custom_mode(output_, static_cast<int32_t>(w), static_cast<int32_t>(h), 0);
	mode_pending_ = true;
}

void Head::poll() {
	core::Changes changes = tracker_.poll();
	if (!changes.any() || !output_) return;
	if (changes.mode) apply_mode();
	if (software_cursor_) {
		if (changes.cursor_image || changes.cursor_position) dirty_ = true;
	} else {
		update_hardware_cursor(changes);
	}
	if (changes.frame || changes.mode) dirty_ = true;
	if (dirty_) wlr_output_schedule_frame(output_);
}

void Head::repaint() {
	if (!output_) return;
	dirty_ = true;
	wlr_output_schedule_frame(output_);
}

void Head::update_hardware_cursor(const core::Changes &changes) {
	if (!hw_cursor_) return;
	auto &stats = tracker_.stats();
	const core::ShownPlane &c = tracker_.cursor();
	const bool has_hot = c.info.x_hot != vgpu::kNoHotspot;
	const int32_t hx = has_hot ? static_cast<int32_t>(c.info.x_hot) : 0;
	const int32_t hy = has_hot ? static_cast<int32_t>(c.info.y_hot) : 0;
	if (changes.cursor_image) {
		stats.cursor_images++;
		if (!c.visible() || !c.buffer->cpu_data()) {
			wlr_output_cursor_set_image(hw_cursor_, nullptr, 0, 0, 0, 0, 0);
		} else {
			auto *imp = static_cast<const render::GuestImport *>(c.buffer.get());
			imp->begin_read();
			wlr_output_cursor_set_image(hw_cursor_, c.buffer->cpu_data() + c.info.offset, c.info.stride / 4,
			                            c.info.width, c.info.height, hx, hy);
			imp->end_read();
			if (output_->hardware_cursor != hw_cursor_) {
				// The plane refused the image: compose it ourselves from now on.
				wlr_log(WLR_INFO, "%s: cursor plane refused the image; drawing the cursor in software",
				        output_->name);
				wlr_output_cursor_destroy(hw_cursor_);
				hw_cursor_ = nullptr;
				software_cursor_ = true;
				stats.cursor_path = "software";
				dirty_ = true;
				return;
			}
		}
	}
	if (c.visible() && (changes.cursor_position || changes.cursor_image)) {
		stats.cursor_moves++;
		wlr_output_cursor_move(hw_cursor_, c.info.x_pos + hx, c.info.y_pos + hy);
	}
}

void Head::on_frame() {
	awaiting_frame_ = false;
	// A frame is drawn only when the guest changed something, or when wlroots needs one
	// (a screencopy client waits for a commit).
	if (stopping_ || (!dirty_ && !output_->needs_frame)) return;
	draw_and_commit();
}

render::OutputTarget *Head::target_for(wlr_buffer *buffer, const render::TargetDesc &desc) {
	auto it = targets_.find(buffer);
	if (it != targets_.end() && it->second->target->matches(desc)) return it->second->target.get();
	auto t = render::OutputTarget::create(server_.vulkan(), desc);
	if (!t) {
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

bool Head::draw_and_commit() {
	if (!wlr_output_attach_render(output_, nullptr)) {
		wlr_log(WLR_ERROR, "%s: cannot get a back buffer", output_->name);
		return false;
	}
	wlr_buffer *bb = output_->back_buffer;
	render::TargetDesc desc;
	size_t stride = 0;
	void *data = nullptr;
	if (!wlr_buffer_begin_data_ptr_access(bb, WLR_BUFFER_DATA_PTR_ACCESS_WRITE, &data, &desc.drm_format, &stride)) {
		wlr_log(WLR_ERROR, "%s: the output buffer is not CPU-mapped (dma-buf outputs are not supported yet)",
		        output_->name);
		wlr_output_rollback(output_);
		return false;
	}
	desc.data = data;
	desc.stride = static_cast<uint32_t>(stride);
	desc.width = static_cast<uint32_t>(bb->width);
	desc.height = static_cast<uint32_t>(bb->height);

	render::FrameDesc frame;
	const core::ShownPlane &p = tracker_.primary();
	const core::ShownPlane &c = tracker_.cursor();
	if (p.visible()) frame.primary = static_cast<const render::GuestImport *>(p.buffer.get());
	if (software_cursor_ && c.visible() && frame.primary)
		frame.cursor = render::SoftwareCursor{static_cast<const render::GuestImport *>(c.buffer.get()), c.info.x_pos,
		                                      c.info.y_pos};
	bool ok = false;
	if (render::OutputTarget *target = target_for(bb, desc)) {
		auto drawn = server_.head_renderer().draw(frame, *target);
		if (drawn) ok = true;
		else wlr_log(WLR_ERROR, "%s: drawing failed: %s", output_->name, drawn.error().c_str());
	}
	wlr_buffer_end_data_ptr_access(bb);
	if (!ok) {
		wlr_output_rollback(output_);
		return false;
	}
	tracker_.stats().renders++;
	if (!wlr_output_commit(output_)) {
		wlr_log(WLR_ERROR, "%s: commit failed", output_->name);
		return false;
	}
	tracker_.stats().commits++;
	awaiting_frame_ = true;
	dirty_ = false;
	if (mode_pending_) {
		mode_pending_ = false;
		server_.outputs_changed();
	}
	return true;
}

} // namespace vscanout::compositor
