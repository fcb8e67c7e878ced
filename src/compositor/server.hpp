// The compositor: wlroots backend, renderer and allocator, protocols, the Vulkan renderer, the
// guest source, and one Head per guest head.
#pragma once

#include <map>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include "compositor/capture_demand.hpp"
#include "compositor/listener.hpp"
#include "compositor/options.hpp"
#include "compositor/wlr.hpp"
#include "render/head_renderer.hpp"
#include "render/vk_context.hpp"
#include "vgpu/source.hpp"

namespace vscanout::compositor {

class Head;
class Keyboard;
class Pointer;

// vscanout's exit statuses (docs/design.md, "Exit causes"; README, --help). Every exit logs its
// cause in one line: "exiting (status N): <cause>".
enum ExitStatus : int {
	kExitOk = 0,          // a signal (SIGINT, SIGTERM, SIGHUP), the sim's quit command, the last
	                      // window closed (nested), the source ended (QEMU gone with --once)
	kExitStartFailed = 1, // could not start (the message says why)
	kExitUsage = 2,       // a bad command line
	kExitBackendGone = 3, // the display went away under vscanout: a wlroots backend was destroyed
	                      // (the parent compositor or X server hung up, the session ended)
	kExitNoCause = 70,    // the event loop ended with no cause recorded (a bug)
};
// A fatal signal (SIGSEGV, SIGBUS, SIGABRT, ...) ends the process with 128 + N after one line on
// stderr (base/signals.hpp).

class Server {
public:
	explicit Server(Options options);
	~Server();

	// Builds everything; an error says what is missing.
	Status init();
	// Runs until an exit cause (a signal, the source ending, the last window closed, the backend
	// gone); returns the exit status (ExitStatus).
	int run();
	// Ends the event loop with this status, logging the cause; the first cause wins.
	void exit_with(int status, const std::string &cause);

	const Options &options() const { return options_; }
	RunMode run_mode() const { return mode_; }
	// Screencopy frames waiting on outputs, and which clients have what (a static guest serves a
	// streaming client once; docs/design.md, "Screen capture and the refresh rule").
	CaptureDemand &capture_demand() { return *capture_demand_; }
	wl_display *display() const { return display_; }
	wlr_renderer *renderer() const { return renderer_; }
	wlr_allocator *allocator() const { return allocator_; }
	vgpu::Source &source() { return *source_; }
	render::VulkanContext &vulkan() { return *vk_; }
	render::HeadRenderer &head_renderer() { return *head_renderer_; }
	// A Vulkan device to draw and import with: false from its loss until a new one is made.
	bool vulkan_ready() const { return vk_ && head_renderer_ && !vk_->lost(); }
	// The Vulkan device was lost (VulkanContext::lost()): every head's imports and targets go,
	// and a new context is made on the event loop, retried with backoff while that fails
	// (docs/design.md, "Device loss").
	void device_lost();
	render::ImportPolicy import_policy(core::HeadStats &stats, bool cursor) const; // copies counted in stats

	// The output set changed (added, removed, resized): tell output-management clients.
	void outputs_changed();
	// A head's output went away under it (a nested window closed, a connector unplugged).
	void output_closed(Head &head);
	void write_stats();

private:
	// Signals (SIGINT, SIGTERM, SIGHUP, SIGUSR1) read from a signalfd on the event loop, so the
	// sender's pid is known (wl_event_loop_add_signal drops it).
	static int on_signal(int fd, uint32_t mask, void *data);
	static void on_last_output_check(void *data);
	static int on_vulkan_retry(void *data);
	void recreate_vulkan();
	void watch_backend_destroy();
	Status init_source();
	// Privileged protocols (docs/design.md, "Privileged protocols"): which class a global is,
	// and the filter libwayland asks for every global and client.
	GlobalClass global_class(const wl_global *global) const;
	static bool global_filter(const wl_client *client, const wl_global *global, void *data);
	void log_privileges() const;
	// Where VK_EXT_physical_device_drm can tell: the DRM device whose GPU should render.
	void choose_drm_device(render::ContextOptions &vo) const;
	std::string vfio_device_; // the first VFIO device named on the command line, if any
	void add_head(uint32_t id);
	void remove_head(uint32_t id);
	bool create_output();
	void on_new_output(wlr_output *output);
	// Input (input.cpp): keyboards and pointers go to the guest of the focused head.
	void init_input();
	void on_new_input(wlr_input_device *device);
	void add_keyboard(wlr_input_device *device, bool is_virtual);
	void add_pointer(wlr_input_device *device);
	Head *focused_head();
	Head *head_of_device(wlr_pointer *pointer); // a nested window's pointer, else the focus
	// KMS: connectors no head shows yet, in the order they came.
	void add_free_output(wlr_output *output);
	void assign_outputs();
	void attach(Head &head, wlr_output *output);
	static int on_watch_fd(int fd, uint32_t mask, void *data);
	static int on_poll_timer(void *data);
	static int on_repaint_timer(void *data);

	Options options_;
	wl_display *display_ = nullptr;
	wlr_backend *backend_ = nullptr;
	wlr_session *session_ = nullptr; // DRM/libinput: the seat session, for VT switches
	wlr_renderer *renderer_ = nullptr;
	wlr_allocator *allocator_ = nullptr;
	wlr_output_layout *layout_ = nullptr;
	wlr_output_manager_v1 *output_manager_ = nullptr;
	RunMode mode_ = RunMode::headless;
	wlr_screencopy_manager_v1 *screencopy_ = nullptr;
	wlr_virtual_keyboard_manager_v1 *virtual_keyboards_ = nullptr;
	wlr_virtual_pointer_manager_v1 *virtual_pointers_ = nullptr;
	wlr_security_context_manager_v1 *security_context_ = nullptr;
	std::unique_ptr<CaptureDemand> capture_demand_;
	std::unique_ptr<render::VulkanContext> vk_;
	std::unique_ptr<render::HeadRenderer> head_renderer_;
	std::unique_ptr<vgpu::Source> source_;
	std::map<uint32_t, std::unique_ptr<Head>> heads_;
	Head *head_wanting_output_ = nullptr;
	bool nested_ = false; // outputs are windows of a parent desktop
	std::vector<wl_event_source *> event_sources_;
	wl_event_source *poll_timer_ = nullptr;
	wl_event_source *repaint_timer_ = nullptr;
	struct FreeOutput {
		wlr_output *output;
		Listener destroy;
	};
	std::vector<std::unique_ptr<FreeOutput>> free_outputs_;
	std::vector<std::unique_ptr<Keyboard>> keyboards_;
	std::vector<std::unique_ptr<Pointer>> pointers_;
	wlr_seat *seat_ = nullptr;
	uint32_t focus_ = UINT32_MAX; // the head keys go to (the pointer's last head); none yet: the first
	std::map<uint32_t, render::Point> pointer_last_; // per head, in guest pixels, for relative guests
	Listener new_output_, new_input_, new_virtual_keyboard_, new_virtual_pointer_, output_apply_, output_test_;
	std::vector<std::unique_ptr<Listener>> backend_destroy_; // the backend and each sub-backend
	std::string multi_kinds_;                                // what the multi backend holds, for the log
	int exit_status_ = -1;                                   // -1: no exit cause yet
	std::string exit_cause_;
	render::ContextOptions vk_options_; // what the first context was made with, for the next ones
	wl_event_source *vk_retry_ = nullptr;
	bool vk_dropped_ = false;      // the lost context and everything made with it are gone
	int vk_backoff_ms_ = 0;        // the wait before the next attempt (0: none failed yet)
	int vk_fail_recreates_ = 0;    // fault injection: VSCANOUT_FAIL_DEVICE_RECREATE=N
	bool vk_loss_pending_ = false; // a new device is due on the timer
	uint64_t vk_made_ms_ = 0;      // when the last new device was made (0: none yet)
	int vk_relost_ms_ = 0;         // the wait after a device lost again soon after it was made
	int signal_fd_ = -1;
	wl_event_source *signal_source_ = nullptr;

public:
	// From a Pointer: positions 0..1 over the device's window (absolute) or deltas (relative).
	void pointer_absolute(wlr_pointer *pointer, double x, double y);
	void pointer_relative(wlr_pointer *pointer, double dx, double dy);
	void pointer_button(wlr_pointer *pointer, uint32_t button, bool pressed);
	void pointer_wheel(wlr_pointer *pointer, int32_t steps);
};

} // namespace vscanout::compositor
