// The compositor: wlroots backend, renderer and allocator, protocols, the Vulkan renderer, the
// guest source, and one Head per guest head.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compositor/listener.hpp"
#include "compositor/options.hpp"
#include "compositor/wlr.hpp"
#include "render/head_renderer.hpp"
#include "render/vk_context.hpp"
#include "vgpu/source.hpp"

namespace vscanout::compositor {

class Head;
class Keyboard;

class Server {
public:
	explicit Server(Options options);
	~Server();

	// Builds everything; an error says what is missing.
	Status init();
	// Runs until SIGINT/SIGTERM; returns the exit status.
	int run();

	const Options &options() const { return options_; }
	wl_display *display() const { return display_; }
	wlr_renderer *renderer() const { return renderer_; }
	wlr_allocator *allocator() const { return allocator_; }
	vgpu::Source &source() { return *source_; }
	render::VulkanContext &vulkan() { return *vk_; }
	render::HeadRenderer &head_renderer() { return *head_renderer_; }
	render::ImportPolicy import_policy(uint64_t *copy_counter, bool cursor) const;

	// The output set changed (added, removed, resized): tell output-management clients.
	void outputs_changed();
	// A head's output went away under it (a nested window closed, a connector unplugged).
	void output_closed(Head &head);
	void write_stats();

private:
	Status init_source();
	void add_head(uint32_t id);
	void remove_head(uint32_t id);
	void drain_presents();
	bool create_output();
	void on_new_output(wlr_output *output);
	void on_new_input(wlr_input_device *device);
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
	wlr_renderer *renderer_ = nullptr;
	wlr_allocator *allocator_ = nullptr;
	wlr_output_layout *layout_ = nullptr;
	wlr_output_manager_v1 *output_manager_ = nullptr;
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
	Listener new_output_, new_input_, output_apply_, output_test_;
};

} // namespace vscanout::compositor
