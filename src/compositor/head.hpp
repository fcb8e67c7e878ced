// One guest head on screen: its wlr_output (HEAD-<id>), its tracker, its cursor, and the
// frame handler where a frame is drawn and committed.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <tuple>
#include <utility>
#include <vector>
#include <string>
#include <unordered_map>

#include "compositor/cursor_path.hpp"
#include "compositor/fence_watch.hpp"
#include "compositor/listener.hpp"
#include "compositor/wlr.hpp"
#include "render/import.hpp"
#include "render/frame_map.hpp"
#include "render/target.hpp"

namespace vscanout::compositor {

class Server;

class Head {
public:
	Head(Server &server, uint32_t id, core::TrackerOptions options);
	~Head();
	Head(const Head &) = delete;
	Head &operator=(const Head &) = delete;

	uint32_t id() const { return id_; }
	wlr_output *output() const { return output_; }
	bool kms() const { return kms_; }
	render::HeadTracker &tracker() { return tracker_; }

	// Binds the wlroots output made for this head and configures it.
	void attach_output(wlr_output *output);
	// Gives a KMS connector back (the head goes away): turned off, its own name again.
	wlr_output *release_output();
	// The connector's name (KMS), else the output's.
	const std::string &connector() const { return connector_; }

	// Queries the source now; schedules a frame if the generation advanced.
	void poll();

	// The guest frame's place on the output as it is now (invalid while nothing is shown), for
	// pointer input.
	render::FrameMap frame_map() const;

	// Forces a repaint (refresh=poll).
	void repaint();

	// Device loss (docs/design.md, "Device loss"): every import and output target goes with the
	// lost device; the head shows no signal until gpu_state_back() imports its planes again.
	void drop_gpu_state();
	void gpu_state_back();
	// Draws again at the next frame.
	void redraw();

private:
	struct Target {
		std::unique_ptr<render::OutputTarget> target;
		Listener destroy;
	};

	void on_frame();
	void on_output_destroy();
	void apply_mode();
	void choose_kms_mode();
	// The guest cursor changed (image: a new image or frame size; position: it moved).
	void update_cursor(bool image, bool position);
	void cursor_path_changed(bool redraw);
	bool draw_and_commit();
	// No Vulkan device (lost, a new one not made yet): the no-signal background, on the CPU.
	bool draw_without_device();
	bool try_direct_scanout();
	wlr_buffer *scanout_buffer(const std::shared_ptr<render::GuestImport> &buffer);
	void drop_scanout_buffers();
	bool commit_frame(const wlr_output_state &state, wlr_buffer *committed);
	void clear_pending();
	bool recommit();
	// True (and the output's needs_frame cleared) when the only frames waiting are screencopy
	// frames that a commit without new content would not serve.
	bool captures_served();
	void forget_output();
	// The target for an output buffer (made once per buffer); nullptr on failure, logged unless
	// `error` takes the reason.
	render::OutputTarget *target_for(wlr_buffer *buffer, const render::TargetDesc &desc, std::string *error = nullptr);

	Server &server_;
	uint32_t id_;
	render::HeadTracker tracker_;
	FenceWatch fence_watch_;
	wlr_output *output_ = nullptr;
	bool kms_ = false; // a DRM connector, not an output we made
	std::string connector_;
	// The guest cursor's paths: the output's own where it has one (the KMS cursor plane, or
	// nested the parent's pointer while the guest pointer is absolute), else software.
	CursorPaths cursors_;
	wlr_buffer *front_ = nullptr; // KMS: the last buffer committed, locked, for cursor-only commits
	// KMS direct scan-out: wlr_buffers made for recent guest dma-bufs, and the configurations
	// (format, modifier, width, height, stride) the driver refused.
	std::vector<std::pair<const render::GuestImport *, wlr_buffer *>> scanout_buffers_;
	std::set<std::tuple<uint32_t, uint64_t, uint32_t, uint32_t, uint32_t>> scanout_refused_;
	bool output_dmabuf_ = true; // try drawing straight into dma-buf output buffers
	bool dirty_ = true;
	bool device_commit_ = false; // a device cursor path (KMS plane) changed: the next commit applies it
	wlr_output_state pending_;   // what the next commit sets besides the frame (a mode, enabling)
	bool mode_pending_ = false;  // a mode set waits for the next commit
	uint32_t mode_w_ = 0, mode_h_ = 0;
	std::unordered_map<wlr_buffer *, std::unique_ptr<Target>> targets_;
	Listener frame_, needs_frame_, request_state_, commit_, destroy_;
};

} // namespace vscanout::compositor
