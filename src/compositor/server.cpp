#include "compositor/server.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.hpp"
#include "base/signals.hpp"
#include "compositor/head.hpp"
#include "compositor/keyboard.hpp"
#include "compositor/pointer.hpp"
#include "core/stats.hpp"
#include "vgpu/source_factory.hpp"
#include "vgpu/vfio_device.hpp"

namespace vscanout::compositor {

Server::Server(Options options) : options_(std::move(options)) {}

Server::~Server() {
	backend_destroy_.clear(); // destroying the backend below is no exit cause
	if (signal_source_) wl_event_source_remove(signal_source_);
	if (signal_fd_ >= 0) ::close(signal_fd_);
	for (wl_event_source *s : event_sources_) wl_event_source_remove(s);
	if (poll_timer_) wl_event_source_remove(poll_timer_);
	if (vk_retry_) wl_event_source_remove(vk_retry_);
	if (repaint_timer_) wl_event_source_remove(repaint_timer_);
	if (display_) wl_display_destroy_clients(display_);
	heads_.clear();
	capture_demand_.reset();
	new_output_.disconnect();
	new_input_.disconnect();
	new_virtual_keyboard_.disconnect();
	new_virtual_pointer_.disconnect();
	free_outputs_.clear();
	keyboards_.clear();
	pointers_.clear();
	output_apply_.disconnect();
	output_test_.disconnect();
	if (backend_) wlr_backend_destroy(backend_); // destroys the outputs
	if (session_) wlr_session_destroy(session_); // ours, not the backend's
	if (allocator_) wlr_allocator_destroy(allocator_);
	if (renderer_) wlr_renderer_destroy(renderer_);
	if (layout_) wlr_output_layout_destroy(layout_);
	head_renderer_.reset();
	vk_.reset();
	if (display_) wl_display_destroy(display_);
}

render::ImportPolicy Server::import_policy(core::HeadStats &stats, bool cursor) const {
	render::ImportPolicy p;
	// The cursor needs CPU-readable pixels for a hardware cursor; it is small, so map it.
	p.allow_dmabuf = !cursor && options_.import == ImportChoice::automatic;
	p.allow_host = options_.import != ImportChoice::copy;
	p.copy_counter = &stats.copies;
	p.copy_bytes_counter = &stats.copy_bytes;
	return p;
}

Status Server::init_source() {
	auto plan = vgpu::plan_sources(options_.sources);
	if (!plan) return plan.take_error();
	if (plan->kind == vgpu::SourcePlan::Kind::vfio && !plan->vfio.empty()) vfio_device_ = plan->vfio.front().device;
	vgpu::SourceSettings settings;
	settings.poll_hz = options_.poll_hz;
	settings.once = options_.once;
	settings.vfio.edid = options_.edid;
	auto source = vgpu::open_source(std::move(*plan), settings);
	if (!source) return source.take_error();
	source_ = std::move(*source);
	return Ok{};
}

void Server::choose_drm_device(render::ContextOptions &vo) const {
	// The vGPU's parent first: only its GPU reads the guest's buffers (tiled, in VRAM) zero-copy.
	if (!vfio_device_.empty()) {
		if (auto path = vgpu::resolve_vfio_device(vfio_device_)) {
			if (auto dev = render::drm_device_of_vfio(*path)) {
				vo.drm_device = *dev;
				vo.drm_reason = "the vGPU's parent device";
				return;
			} else {
				VLOG_DEBUG("vulkan: %s", dev.error().c_str());
			}
		}
	}
	// Else the device that shows the frames: the KMS device, or the parent compositor's.
	if (const int fd = wlr_backend_get_drm_fd(backend_); fd >= 0) {
		if (auto dev = render::drm_device_of_fd(fd)) {
			vo.drm_device = *dev;
			vo.drm_reason = "the display's DRM device";
		}
	}
}

Status Server::init() {
	// We draw every frame ourselves: wlroots' renderer only serves screencopy and cursors, and
	// pixman gives output buffers in host memory that Vulkan imports without a copy.
	setenv("WLR_RENDERER", "pixman", 0);
	// One output per guest head, no extra output from the backend itself.
	setenv("WLR_HEADLESS_OUTPUTS", "0", 0);
	setenv("WLR_WL_OUTPUTS", "0", 0);
	setenv("WLR_X11_OUTPUTS", "0", 0);

	if (Status s = init_source(); !s) return s;

	display_ = wl_display_create();
	wl_event_loop *loop = wl_display_get_event_loop(display_);
	backend_ = wlr_backend_autocreate(loop, &session_);
	if (!backend_) return fail("no wlroots backend could start (set WLR_BACKENDS=headless to run without a display)");
	watch_backend_destroy();

	// How vscanout runs decides the privileged protocols' defaults: a DRM backend is a kiosk.
	auto find_mode = [](wlr_backend *b, void *data) {
		auto *mode = static_cast<RunMode *>(data);
		if (wlr_backend_is_drm(b))
			*mode = RunMode::kiosk;
		else if ((wlr_backend_is_wl(b) || wlr_backend_is_x11(b)) && *mode != RunMode::kiosk)
			*mode = RunMode::nested;
	};
	if (wlr_backend_is_multi(backend_))
		wlr_multi_for_each_backend(backend_, find_mode, &mode_);
	else
		find_mode(backend_, &mode_);

	render::ContextOptions &vo = vk_options_;
	vo.device = options_.vk_device;
	choose_drm_device(vo);
	if (const char *n = std::getenv("VSCANOUT_FAIL_DEVICE_RECREATE")) vk_fail_recreates_ = std::atoi(n);
	auto vk = render::VulkanContext::create(vo);
	if (!vk) return vk.take_error();
	vk_ = std::move(*vk);
	auto hr = render::HeadRenderer::create(*vk_);
	if (!hr) return hr.take_error();
	head_renderer_ = std::move(*hr);
	renderer_ = wlr_renderer_autocreate(backend_);
	if (!renderer_) return fail("wlroots could not create its renderer");
	wlr_renderer_init_wl_display(renderer_, display_);
	allocator_ = wlr_allocator_autocreate(backend_, renderer_);
	if (!allocator_) return fail("wlroots could not create a buffer allocator");

	layout_ = wlr_output_layout_create(display_);
	wlr_xdg_output_manager_v1_create(display_, layout_);
	screencopy_ = wlr_screencopy_manager_v1_create(display_);
	capture_demand_ = std::make_unique<CaptureDemand>(screencopy_);
	// A sandbox (Flatpak) makes its clients' socket through this; they get no privileged global.
	security_context_ = wlr_security_context_manager_v1_create(display_);
	wlr_presentation_create(display_, backend_);
	output_manager_ = wlr_output_manager_v1_create(display_);
	// Head modes follow the guest: configuration requests from clients are refused.
	auto refuse = [](void *data) {
		auto *config = static_cast<wlr_output_configuration_v1 *>(data);
		wlr_output_configuration_v1_send_failed(config);
		wlr_output_configuration_v1_destroy(config);
	};
	output_apply_.connect(&output_manager_->events.apply, refuse);
	output_test_.connect(&output_manager_->events.test, refuse);
	new_output_.connect(&backend_->events.new_output,
	                    [this](void *data) { on_new_output(static_cast<wlr_output *>(data)); });
	init_input();
	wl_display_set_global_filter(display_, global_filter, this);
	log_privileges();

	const char *socket = nullptr;
	if (!options_.socket.empty()) {
		if (wl_display_add_socket(display_, options_.socket.c_str()) != 0)
			return fail("cannot create Wayland socket " + options_.socket);
		socket = options_.socket.c_str();
	} else {
		socket = wl_display_add_socket_auto(display_);
		if (!socket) return fail("cannot create a Wayland socket (is XDG_RUNTIME_DIR set?)");
	}
	if (!wlr_backend_start(backend_)) return fail("the wlroots backend failed to start");
	auto find_nested = [](wlr_backend *b, void *data) {
		if (wlr_backend_is_wl(b) || wlr_backend_is_x11(b)) *static_cast<bool *>(data) = true;
	};
	if (wlr_backend_is_multi(backend_))
		wlr_multi_for_each_backend(backend_, find_nested, &nested_);
	else
		find_nested(backend_, &nested_);
	setenv("WAYLAND_DISPLAY", socket, 1);

	vgpu::SourceEvents events;
	events.head_added = [this](uint32_t h) { add_head(h); };
	events.head_removed = [this](uint32_t h) { remove_head(h); };
	events.head_changed = [this](uint32_t h) {
		// A head whose output was closed is left alone: nothing would show what it finds.
		if (auto it = heads_.find(h); it != heads_.end() && it->second->output()) it->second->poll();
	};
	events.ended = [this] {
		const std::string why = source_->end_reason();
		exit_with(kExitOk, "the source (" + source_->name() + ") ended" + (why.empty() ? "" : ": " + why));
	};
	events.inject = [](const std::string &what) {
		if (what == "lose-device") render::arm_device_loss();
	};
	source_->set_events(std::move(events));
	for (int fd : source_->watch_fds())
		event_sources_.push_back(wl_event_loop_add_fd(loop, fd, WL_EVENT_READABLE, on_watch_fd, this));
	for (uint32_t h : source_->heads()) add_head(h);
	// wlroots (0.15 and 0.18 alike) sends output-management clients a `done` with serial 0 until
	// a configuration with a head is set (an empty one changes nothing, so it sends nothing), and
	// wlr-randr waits for another: with no head yet (a QEMU source before QEMU is up) it would
	// never return. A serial of our own makes "no outputs" an answer.
	if (heads_.empty()) output_manager_->serial = wl_display_next_serial(display_);

	const int poll_hz = options_.refresh == RefreshPolicy::watch ? options_.poll_hz : source_->poll_hz();
	if (poll_hz > 0) {
		poll_timer_ = wl_event_loop_add_timer(loop, on_poll_timer, this);
		wl_event_source_timer_update(poll_timer_, 1000 / poll_hz);
	}
	if (options_.refresh == RefreshPolicy::poll) {
		repaint_timer_ = wl_event_loop_add_timer(loop, on_repaint_timer, this);
		wl_event_source_timer_update(repaint_timer_, static_cast<int>(1000 / options_.refresh_hz));
	}
	std::printf("vscanout: %zu head(s) from %s on WAYLAND_DISPLAY=%s\n", heads_.size(), source_->name().c_str(),
	            socket);
	std::fflush(stdout);
	return Ok{};
}

int Server::on_watch_fd(int fd, uint32_t, void *data) {
	static_cast<Server *>(data)->source_->dispatch(fd);
	return 0;
}

int Server::on_poll_timer(void *data) {
	auto *self = static_cast<Server *>(data);
	// A head without an output (waiting for a connector, or its window closed) is not polled.
	for (auto &[id, head] : self->heads_)
		if (head->output()) head->poll();
	const int hz = self->options_.refresh == RefreshPolicy::watch ? self->options_.poll_hz : self->source_->poll_hz();
	wl_event_source_timer_update(self->poll_timer_, 1000 / hz);
	return 0;
}

int Server::on_repaint_timer(void *data) {
	auto *self = static_cast<Server *>(data);
	for (auto &[id, head] : self->heads_) head->repaint();
	wl_event_source_timer_update(self->repaint_timer_, static_cast<int>(1000 / self->options_.refresh_hz));
	return 0;
}

void Server::add_head(uint32_t id) {
	if (heads_.count(id)) return;
	core::TrackerOptions to;
	to.cache_bound = options_.cache;
	to.watch_content = options_.refresh == RefreshPolicy::watch;
	to.fence_timeout_ms = options_.fence_timeout_ms;
	auto head = std::make_unique<Head>(*this, id, to);
	Head *h = head.get();
	heads_[id] = std::move(head);
	// Know the guest's mode before the output exists, so its first commit already has it (a
	// parent compositor sizes a new window from the first buffer it sees).
	h->poll();
	head_wanting_output_ = h;
	const bool made = create_output();
	head_wanting_output_ = nullptr;
	if (!made) assign_outputs(); // KMS: a connected connector nobody shows yet
	if (!h->output()) {
		auto mapped = options_.output_map.find(id);
		if (mapped != options_.output_map.end())
			wlr_log(WLR_INFO, "HEAD-%u: waiting for connector %s", id, mapped->second.c_str());
		else
			wlr_log(WLR_INFO, "HEAD-%u: waiting for an output (no free connector)", id);
	}
	h->poll();
}

void Server::remove_head(uint32_t id) {
	auto it = heads_.find(id);
	if (it == heads_.end()) return;
	wlr_log(WLR_INFO, "head %u: unplugged", id);
	Head &head = *it->second;
	if (head.output() && head.kms()) {
		// A connector outlives the head: off, and free for a head that waits.
		wlr_output_layout_remove(layout_, head.output());
		add_free_output(head.release_output());
	}
	heads_.erase(it); // destroys an output we made (a window, a headless output)
	assign_outputs();
	outputs_changed();
}

struct CreateOutputCtx {
	bool done = false;
};

bool Server::create_output() {
	CreateOutputCtx ctx;
	auto create = [](wlr_backend *b, void *data) {
		auto *c = static_cast<CreateOutputCtx *>(data);
		if (c->done) return;
		if (wlr_backend_is_headless(b))
			c->done = wlr_headless_add_output(b, 1024, 768) != nullptr;
		else if (wlr_backend_is_wl(b))
			c->done = wlr_wl_output_create(b) != nullptr;
		else if (wlr_backend_is_x11(b))
			c->done = wlr_x11_output_create(b) != nullptr;
	};
	if (wlr_backend_is_multi(backend_))
		wlr_multi_for_each_backend(backend_, create, &ctx);
	else
		create(backend_, &ctx);
	return ctx.done;
}

void Server::on_new_output(wlr_output *output) {
	if (Head *head = head_wanting_output_) {
		// The output add_head asked the backend for (headless, a nested window).
		head_wanting_output_ = nullptr;
		attach(*head, output);
		return;
	}
	// A connector (KMS) or an output the backend made itself: to the head waiting for it.
	add_free_output(output);
	assign_outputs();
	for (const auto &f : free_outputs_)
		if (f->output == output) wlr_log(WLR_INFO, "output %s: no guest head for it; leaving it off", output->name);
}

void Server::attach(Head &head, wlr_output *output) {
	head.attach_output(output);
	wlr_output_layout_add_auto(layout_, output);
	outputs_changed();
}

void Server::add_free_output(wlr_output *output) {
	auto f = std::make_unique<FreeOutput>();
	f->output = output;
	FreeOutput *raw = f.get();
	f->destroy.connect(&output->events.destroy, [this, raw](void *) {
		std::erase_if(free_outputs_, [raw](const auto &p) { return p.get() == raw; });
	});
	if (output->enabled) {
		// Nothing but the guest is shown: a connector no head uses is dark.
		wlr_output_state off;
		wlr_output_state_init(&off);
		wlr_output_state_set_enabled(&off, false);
		wlr_output_commit_state(output, &off);
		wlr_output_state_finish(&off);
	}
	free_outputs_.push_back(std::move(f));
}

void Server::assign_outputs() {
	auto is_mapped = [this](const char *name) {
		for (const auto &[id, connector] : options_.output_map)
			if (connector == name) return true;
		return false;
	};
	for (auto &[id, head] : heads_) {
		if (head->output()) continue;
		auto mapped = options_.output_map.find(id);
		auto pick = std::find_if(free_outputs_.begin(), free_outputs_.end(), [&](const auto &f) {
			return mapped != options_.output_map.end() ? mapped->second == f->output->name
			                                           : !is_mapped(f->output->name);
		});
		if (pick == free_outputs_.end()) continue;
		wlr_output *output = (*pick)->output;
		free_outputs_.erase(pick);
		attach(*head, output);
	}
}

void Server::output_closed(Head &head) {
	assign_outputs(); // KMS: a free connector, if there is one, takes the head
	outputs_changed();
	for (auto &[id, h] : heads_)
		if (h->output()) return;
	// Nested, the windows are the session: closing the last one ends vscanout (status 0). Decided
	// once this dispatch is over: a parent compositor hanging up destroys every window first and
	// the backend after, and that exit has its own cause and status.
	if (nested_ && !options_.keep_running)
		wl_event_loop_add_idle(wl_display_get_event_loop(display_), on_last_output_check, this);
}

void Server::on_last_output_check(void *data) {
	auto *self = static_cast<Server *>(data);
	if (self->exit_status_ >= 0) return;
	for (auto &[id, h] : self->heads_)
		if (h->output()) return;
	self->exit_with(kExitOk, "the last window was closed");
}

void Server::watch_backend_destroy() {
	auto watch = [this](wlr_backend *b, const char *kind) {
		auto l = std::make_unique<Listener>();
		Listener *raw = l.get();
		const bool top = b == backend_;
		l->connect(&b->events.destroy, [this, kind, top, raw](void *) {
			raw->disconnect();           // the signal goes with the backend
			if (top) backend_ = nullptr; // gone: not ours to destroy any more
			exit_with(kExitBackendGone, std::string("the ") + kind +
			                                " backend was destroyed (its display went away: the parent compositor or X "
			                                "server hung up, or the session ended)");
		});
		backend_destroy_.push_back(std::move(l));
	};
	auto kind_of = [](wlr_backend *b) {
		return wlr_backend_is_wl(b)         ? "wayland"
		       : wlr_backend_is_x11(b)      ? "x11"
		       : wlr_backend_is_drm(b)      ? "drm"
		       : wlr_backend_is_headless(b) ? "headless"
		       : wlr_backend_is_libinput(b) ? "libinput"
		                                    : "wlroots";
	};
	if (wlr_backend_is_multi(backend_)) {
		// The multi backend destroys itself when its last sub-backend goes, and may say so before
		// that sub-backend's own destroy reaches us: it is named by what it holds ("wayland").
		struct Ctx {
			decltype(watch) *w;
			decltype(kind_of) *k;
			std::string kinds;
		} ctx{&watch, &kind_of, {}};
		wlr_multi_for_each_backend(
		    backend_,
		    [](wlr_backend *b, void *data) {
			    auto *c = static_cast<Ctx *>(data);
			    const char *kind = (*c->k)(b);
			    (*c->w)(b, kind);
			    if (std::string(kind) != "libinput") c->kinds += (c->kinds.empty() ? "" : "+") + std::string(kind);
		    },
		    &ctx);
		multi_kinds_ = ctx.kinds.empty() ? "multi" : ctx.kinds;
		watch(backend_, multi_kinds_.c_str());
	} else {
		watch(backend_, kind_of(backend_));
	}
}

void Server::exit_with(int status, const std::string &cause) {
	if (exit_status_ >= 0) {
		wlr_log(WLR_DEBUG, "exiting already; also: %s", cause.c_str());
		return;
	}
	exit_status_ = status;
	exit_cause_ = cause;
	wlr_log(WLR_INFO, "exiting (status %d): %s", status, cause.c_str());
	if (display_) wl_display_terminate(display_);
}

void Server::device_lost() {
	if (!vk_retry_) vk_retry_ = wl_event_loop_add_timer(wl_display_get_event_loop(display_), on_vulkan_retry, this);
	if (vk_dropped_ || vk_loss_pending_) return; // being made again already
	vk_loss_pending_ = true;
	// Not from inside a draw or an import: on the event loop, at once; but a device lost again
	// within 5 s of being made waits 250 ms, doubling to 30 s, so a GPU that keeps failing does
	// not keep the loop busy making devices (no signal meanwhile).
	const uint64_t now = core::monotonic_ms();
	int delay = 1;
	if (vk_made_ms_ && now - vk_made_ms_ < 5000) {
		vk_relost_ms_ = vk_relost_ms_ ? std::min(vk_relost_ms_ * 2, 30000) : 250;
		delay = vk_relost_ms_;
		wlr_log(WLR_DEBUG, "vulkan: lost again %llu ms after it was made; a new one in %d ms",
		        static_cast<unsigned long long>(now - vk_made_ms_), delay);
	} else {
		vk_relost_ms_ = 0;
	}
	wl_event_source_timer_update(vk_retry_, delay);
}

int Server::on_vulkan_retry(void *data) {
	static_cast<Server *>(data)->recreate_vulkan();
	return 0;
}

void Server::recreate_vulkan() {
	vk_loss_pending_ = false;
	if (!vk_dropped_) {
		// Everything made with the lost device goes first: imports (their fds close; the guest's
		// buffers are opened again), output targets, the renderer, the context.
		for (auto &[id, head] : heads_) head->drop_gpu_state();
		head_renderer_.reset();
		vk_.reset();
		vk_dropped_ = true;
	}
	std::string error;
	if (vk_fail_recreates_ > 0) {
		vk_fail_recreates_--;
		error = "failure injected (VSCANOUT_FAIL_DEVICE_RECREATE)";
	} else if (auto vk = render::VulkanContext::create(vk_options_); !vk) {
		error = vk.error();
	} else if (auto hr = render::HeadRenderer::create(**vk); !hr) {
		error = hr.error();
	} else {
		vk_ = std::move(*vk);
		head_renderer_ = std::move(*hr);
	}
	if (!error.empty()) {
		const bool first = vk_backoff_ms_ == 0;
		vk_backoff_ms_ = first ? 250 : std::min(vk_backoff_ms_ * 2, 30000);
		if (first)
			wlr_log(WLR_ERROR, "vulkan: a new device cannot be made (%s); showing no signal, retrying with backoff",
			        error.c_str());
		else
			wlr_log(WLR_DEBUG, "vulkan: a new device cannot be made (%s); next try in %d ms", error.c_str(),
			        vk_backoff_ms_);
		for (auto &[id, head] : heads_) head->redraw();
		wl_event_source_timer_update(vk_retry_, vk_backoff_ms_);
		return;
	}
	vk_dropped_ = false;
	vk_backoff_ms_ = 0;
	vk_made_ms_ = core::monotonic_ms();
	wlr_log(WLR_INFO, "vulkan: a new device (%s) replaces the lost one; every head's buffers are imported again",
	        vk_->caps().device_name.c_str());
	for (auto &[id, head] : heads_) head->gpu_state_back();
}

void Server::outputs_changed() {
	if (!output_manager_) return;
	wlr_output_configuration_v1 *config = wlr_output_configuration_v1_create();
	for (auto &[id, head] : heads_) {
		if (!head->output()) continue;
		wlr_output_configuration_head_v1 *h = wlr_output_configuration_head_v1_create(config, head->output());
		if (wlr_output_layout_output *lo = wlr_output_layout_get(layout_, head->output())) {
			h->state.x = lo->x;
			h->state.y = lo->y;
		}
	}
	wlr_output_manager_v1_set_configuration(output_manager_, config);
}

GlobalClass Server::global_class(const wl_global *global) const {
	if (screencopy_ && global == screencopy_->global) return GlobalClass::capture;
	if ((virtual_keyboards_ && global == virtual_keyboards_->global) ||
	    (virtual_pointers_ && global == virtual_pointers_->global))
		return GlobalClass::virtual_input;
	if (output_manager_ && global == output_manager_->global) return GlobalClass::output_management;
	if (security_context_ && global == security_context_->global) return GlobalClass::security_context;
	return GlobalClass::ordinary;
}

bool Server::global_filter(const wl_client *client, const wl_global *global, void *data) {
	const auto *self = static_cast<const Server *>(data);
	const GlobalClass cls = self->global_class(global);
	if (cls == GlobalClass::ordinary) return true;
	const bool sandboxed =
	    self->security_context_ && wlr_security_context_manager_v1_lookup_client(self->security_context_, client);
	return client_may_bind(self->mode_, self->options_.privileges, cls, sandboxed);
}

void Server::log_privileges() const {
	const PrivilegeOptions &p = options_.privileges;
	auto say = [&](GlobalClass cls, const std::optional<bool> &given) {
		const bool on = given.value_or(privileged_default(mode_, cls));
		return std::string(on ? "allowed" : "refused") + (given ? " (by option)" : " (default)");
	};
	wlr_log(WLR_INFO,
	        "%s: screen capture (wlr-screencopy) %s, virtual keyboard and pointer %s for local clients; "
	        "never for sandboxed ones",
	        to_string(mode_), say(GlobalClass::capture, p.capture).c_str(),
	        say(GlobalClass::virtual_input, p.input).c_str());
}

void Server::write_stats() {
	if (options_.stats_path.empty()) return;
	std::vector<core::HeadStats> all;
	for (auto &[id, head] : heads_) all.push_back(head->tracker().stats());
	if (!core::write_stats_file(options_.stats_path, all))
		wlr_log(WLR_ERROR, "cannot write stats to %s", options_.stats_path.c_str());
}

int Server::on_signal(int fd, uint32_t, void *data) {
	auto *self = static_cast<Server *>(data);
	signalfd_siginfo si;
	while (::read(fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
		const std::string who =
		    describe_signal(static_cast<int>(si.ssi_signo), si.ssi_code, static_cast<pid_t>(si.ssi_pid), si.ssi_uid);
		if (si.ssi_signo == SIGUSR1) {
			wlr_log(WLR_DEBUG, "%s: writing the stats", who.c_str());
			self->write_stats();
			continue;
		}
		self->exit_with(kExitOk, who);
	}
	return 0;
}

int Server::run() {
	wl_event_loop *loop = wl_display_get_event_loop(display_);
	// main() blocked these before any thread started; a signalfd reads them with their sender.
	sigset_t mask;
	sigemptyset(&mask);
	for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
	signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd_ < 0) {
		wlr_log(WLR_ERROR, "signalfd failed: %s", std::strerror(errno));
		exit_with(kExitStartFailed, std::string("cannot watch for signals: signalfd failed: ") + std::strerror(errno));
		return exit_status_;
	}
	signal_source_ = wl_event_loop_add_fd(loop, signal_fd_, WL_EVENT_READABLE, on_signal, this);
	if (exit_status_ < 0) wl_display_run(display_);
	if (exit_status_ < 0) {
		exit_status_ = kExitNoCause;
		exit_cause_ = "the event loop ended with no exit cause recorded";
		wlr_log(WLR_ERROR, "exiting (status %d): %s", exit_status_, exit_cause_.c_str());
	}
	wlr_log(WLR_INFO, "shutting down (%s)", exit_cause_.c_str());
	write_stats();
	return exit_status_;
}

} // namespace vscanout::compositor
