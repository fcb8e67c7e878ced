// vscanout benchmarks. Each figure is printed beside a baseline measured in the same run:
//   1. compose time per 1080p frame (1:1 copy path, copy + software cursor, scaled compose,
//      no-signal) against a plain Vulkan buffer copy of the same frame;
//   2. flip-to-commit latency through a real wlroots headless output (median, p99) against
//      committing a frame that needs no tracking, import or compose;
//   3. renders and commits per second, static guest against flipping guest;
//   4. imports per 1000 flips of a double-buffered guest, against importing every flip.
#include <drm_fourcc.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "compositor/wlr.hpp"
#include "core/head_tracker.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"

using namespace vscanout;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Stats {
	double median, p99, mean;
};
Stats summarize(std::vector<double> v) {
	std::sort(v.begin(), v.end());
	double sum = 0;
	for (double x : v) sum += x;
	return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)], sum / v.size()};
}

// A double-buffered guest whose flips the benchmark drives by hand.
class BenchSource final : public vgpu::Source {
public:
	BenchSource(uint32_t w, uint32_t h, int buffers) : w_(w), h_(h) {
		for (int i = 0; i < buffers; i++) {
			auto fd = make_memfd("bench-guest", align_up(uint64_t{w} * 4 * h, 4096));
			auto map = Mapping::map(fd->get(), align_up(uint64_t{w} * 4 * h, 4096), PROT_READ | PROT_WRITE);
			std::memset(map->data(), 0x40 + 0x20 * i, map->size());
			bufs_.push_back({std::move(*fd), std::move(*map)});
		}
		cursor_fd_ = std::move(*make_memfd("bench-cursor", 64 * 64 * 4));
	}
	std::string name() const override { return "bench"; }
	std::vector<uint32_t> heads() const override { return {0}; }
	Result<vgpu::PlaneInfo> query(uint32_t, vgpu::PlaneType type) override {
		vgpu::PlaneInfo p;
		p.type = type;
		if (type == vgpu::PlaneType::cursor) {
			if (!cursor_) return p;
			p.state = vgpu::PlaneState::enabled;
			p.drm_format = DRM_FORMAT_ARGB8888;
			p.width = p.height = 64;
			p.stride = 256;
			p.size = 64 * 64 * 4;
			p.buffer_id = 1000;
			p.x_pos = static_cast<int32_t>(100 + frame_ % 500);
			p.y_pos = 100;
			return p;
		}
		p.state = vgpu::PlaneState::enabled;
		p.drm_format = DRM_FORMAT_XRGB8888;
		p.width = w_;
		p.height = h_;
		p.stride = w_ * 4;
		p.size = static_cast<uint32_t>(align_up(uint64_t{w_} * 4 * h_, 4096));
		p.buffer_id = 1 + frame_ % bufs_.size();
		return p;
	}
	Result<vgpu::GuestBuffer> open_buffer(const vgpu::PlaneInfo &p) override {
		int fd = p.buffer_id == 1000 ? cursor_fd_.get() : bufs_[p.buffer_id - 1].fd.get();
		vgpu::GuestBuffer b;
		b.fd = UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0));
		b.byte_size = *fd_byte_size(fd);
		return b;
	}
	void flip() { frame_++; }
	bool cursor_ = false;

private:
	struct Buf {
		UniqueFd fd;
		Mapping map;
	};
	uint32_t w_, h_;
	std::vector<Buf> bufs_;
	UniqueFd cursor_fd_;
	uint64_t frame_ = 0;
};

render::Importer importer_for(render::VulkanContext &vk, uint64_t *copies) {
	return [&vk, copies](const vgpu::PlaneInfo &p, vgpu::GuestBuffer b) {
		render::ImportPolicy policy;
		policy.copy_counter = copies;
		return render::GuestImport::create(vk, p, std::move(b), policy);
	};
}

void bench_compose(render::VulkanContext &vk, render::HeadRenderer &hr) {
	const uint32_t W = 1920, H = 1080;
	BenchSource src(W, H, 1);
	src.cursor_ = true;
	uint64_t copies = 0;
	render::HeadTracker tracker(0, src, importer_for(vk, &copies), {});
	tracker.poll();
	const render::GuestImport *primary = tracker.primary().buffer.get();
	const render::GuestImport *cursor = tracker.cursor().buffer.get();

	auto out_fd = make_memfd("bench-out", align_up(uint64_t{W} * 4 * H, 4096));
	auto out = Mapping::map(out_fd->get(), align_up(uint64_t{W} * 4 * H, 4096), PROT_READ | PROT_WRITE);
	render::TargetDesc td{out->data(), W * 4, W, H, DRM_FORMAT_XRGB8888};
	auto target = std::move(*render::OutputTarget::create(vk, td));
	auto small_fd = make_memfd("bench-out-small", align_up(uint64_t{1280} * 4 * 1024, 4096));
	auto small = Mapping::map(small_fd->get(), align_up(uint64_t{1280} * 4 * 1024, 4096), PROT_READ | PROT_WRITE);
	render::TargetDesc sd{small->data(), 1280 * 4, 1280, 1024, DRM_FORMAT_XRGB8888};
	auto small_target = std::move(*render::OutputTarget::create(vk, sd));

	const int N = 60;
	auto time = [&](auto &&fn) {
		std::vector<double> t;
		for (int i = 0; i < N + 3; i++) {
			auto t0 = Clock::now();
			fn();
			if (i >= 3) t.push_back(ms_since(t0));
		}
		return summarize(t);
	};
	Stats base = time([&] { (void)hr.copy_only(*primary, *target); });
	Stats copy = time([&] { (void)hr.draw({primary, std::nullopt}, *target); });
	Stats cur = time([&] { (void)hr.draw({primary, render::SoftwareCursor{cursor, 500, 400}}, *target); });
	Stats scaled = time([&] { (void)hr.draw({primary, render::SoftwareCursor{cursor, 500, 400}}, *small_target); });
	Stats nosig = time([&] { (void)hr.draw({nullptr, std::nullopt}, *target); });
	std::printf("\n1. compose time per frame (%d frames each, median / p99 ms)\n", N);
	std::printf("   baseline: plain Vulkan copy 1920x1080            %7.3f / %7.3f\n", base.median, base.p99);
	std::printf("   vscanout 1:1 (copy path)        1920x1080        %7.3f / %7.3f\n", copy.median, copy.p99);
	std::printf("   vscanout 1:1 + software cursor  1920x1080        %7.3f / %7.3f\n", cur.median, cur.p99);
	std::printf("   vscanout scaled + cursor  1920x1080 -> 1280x1024 %7.3f / %7.3f\n", scaled.median, scaled.p99);
	std::printf("   vscanout no-signal frame        1920x1080        %7.3f / %7.3f\n", nosig.median, nosig.p99);
}

// A headless wlroots output with vscanout's draw-and-commit path, driven by hand.
struct Headless {
	wl_display *display = wl_display_create();
	wlr_backend *backend = nullptr;
	wlr_renderer *renderer = nullptr;
	wlr_allocator *allocator = nullptr;
	wlr_output *output = nullptr;
	bool frame = false;
	wl_listener new_output{}, frame_l{};

	Headless(uint32_t w, uint32_t h) {
		backend = wlr_headless_backend_create(wl_display_get_event_loop(display));
		renderer = wlr_renderer_autocreate(backend);
		allocator = wlr_allocator_autocreate(backend, renderer);
		new_output.notify = [](wl_listener *, void *) {};
		wlr_backend_start(backend);
		output = wlr_headless_add_output(backend, w, h);
		wlr_output_init_render(output, allocator, renderer);
		wlr_output_state on;
		wlr_output_state_init(&on);
		wlr_output_state_set_enabled(&on, true);
		wlr_output_commit_state(output, &on);
		wlr_output_state_finish(&on);
		frame_l.notify = [](wl_listener *l, void *) {
			Headless *self = wl_container_of(l, self, frame_l);
			self->frame = true;
		};
		wl_signal_add(&output->events.frame, &frame_l);
	}
	~Headless() {
		wl_list_remove(&frame_l.link);
		wlr_backend_destroy(backend);
		wlr_allocator_destroy(allocator);
		wlr_renderer_destroy(renderer);
		wl_display_destroy(display);
	}
	void wait_frame() {
		frame = false;
		wlr_output_schedule_frame(output);
		while (!frame) wl_event_loop_dispatch(wl_display_get_event_loop(display), -1);
	}
	// Draws with fn into the back buffer, then commits.
	template <typename F> bool commit(F &&fn) {
		if (!wlr_output_configure_primary_swapchain(output, nullptr, &output->swapchain)) return false;
		wlr_buffer *bb = wlr_swapchain_acquire(output->swapchain, nullptr);
		if (!bb) return false;
		void *data;
		uint32_t fmt;
		size_t stride;
		wlr_buffer_begin_data_ptr_access(bb, WLR_BUFFER_DATA_PTR_ACCESS_WRITE, &data, &fmt, &stride);
		fn(render::TargetDesc{data, static_cast<uint32_t>(stride), static_cast<uint32_t>(bb->width),
		                      static_cast<uint32_t>(bb->height), fmt});
		wlr_buffer_end_data_ptr_access(bb);
		wlr_output_state state;
		wlr_output_state_init(&state);
		wlr_output_state_set_buffer(&state, bb);
		wlr_buffer_unlock(bb);
		const bool ok = wlr_output_commit_state(output, &state);
		wlr_output_state_finish(&state);
		return ok;
	}
};

void bench_pipeline(render::VulkanContext &vk, render::HeadRenderer &hr) {
	const uint32_t W = 1280, H = 800;
	setenv("WLR_RENDERER", "pixman", 1);
	Headless hl(W, H);
	BenchSource src(W, H, 2);
	uint64_t copies = 0;
	render::HeadTracker tracker(0, src, importer_for(vk, &copies), {});
	tracker.poll();
	std::map<void *, std::unique_ptr<render::OutputTarget>> targets;
	auto draw = [&](const render::TargetDesc &d) {
		auto &t = targets[d.data];
		if (!t || !t->matches(d)) t = std::move(*render::OutputTarget::create(vk, d));
		const render::GuestImport *p = tracker.primary().buffer.get();
		(void)hr.draw({p, std::nullopt}, *t);
	};

	// 2. flip-to-commit latency: the flip lands at a random point of the frame period.
	const int N = 120;
	std::vector<double> lat, base;
	for (int i = 0; i < N; i++) {
		usleep(static_cast<useconds_t>(rand() % 16000));
		auto t0 = Clock::now();
		src.flip();
		core::Changes c = tracker.poll();
		if (c.frame) {
			hl.wait_frame();
			hl.commit(draw);
		}
		lat.push_back(ms_since(t0));
	}
	std::vector<uint8_t> solid(uint64_t{W} * 4 * H, 0x80);
	for (int i = 0; i < N; i++) {
		usleep(static_cast<useconds_t>(rand() % 16000));
		auto t0 = Clock::now();
		hl.wait_frame();
		hl.commit([&](const render::TargetDesc &d) { std::memcpy(d.data, solid.data(), solid.size()); });
		base.push_back(ms_since(t0));
	}
	Stats l = summarize(lat), b = summarize(base);
	std::printf("\n2. flip-to-commit latency, %ux%u headless output at 60 Hz (%d flips, ms)\n", W, H, N);
	std::printf("   baseline: commit of a ready frame (memcpy only)   median %6.2f  p99 %6.2f\n", b.median, b.p99);
	std::printf("   vscanout: poll, import/cache, compose, commit      median %6.2f  p99 %6.2f\n", l.median, l.p99);

	// 3. renders and commits per second: a static guest, then one flipping as fast as it can.
	auto run_for = [&](bool flipping) {
		uint64_t renders = 0, commits = 0;
		auto t0 = Clock::now();
		while (ms_since(t0) < 1000) {
			if (flipping) src.flip();
			core::Changes c = tracker.poll();
			if (c.frame) {
				hl.wait_frame();
				renders++;
				if (hl.commit(draw)) commits++;
			} else {
				usleep(1000000 / 60); // the poll cadence of a polled source
			}
		}
		return std::pair{renders, commits};
	};
	auto [sr, sc] = run_for(false);
	auto [fr, fc] = run_for(true);
	std::printf("\n3. renders and commits in one second\n");
	std::printf("   static guest:   %4llu renders, %4llu commits\n", (unsigned long long)sr, (unsigned long long)sc);
	std::printf("   flipping guest: %4llu renders, %4llu commits (bounded by the 60 Hz output)\n",
	            (unsigned long long)fr, (unsigned long long)fc);
}

void bench_imports(render::VulkanContext &vk) {
	BenchSource src(640, 480, 2);
	uint64_t copies = 0;
	render::HeadTracker tracker(0, src, importer_for(vk, &copies), {});
	tracker.poll();
	const uint64_t before = tracker.stats().imports;
	auto t0 = Clock::now();
	for (int i = 0; i < 1000; i++) {
		src.flip();
		tracker.poll();
	}
	double cached_ms = ms_since(t0);
	const uint64_t imports = tracker.stats().imports - before + 1;
	// Baseline: what a host that re-imports every flip pays.
	auto importer = importer_for(vk, &copies);
	t0 = Clock::now();
	for (int i = 0; i < 1000; i++) {
		src.flip();
		auto p = *src.query(0, vgpu::PlaneType::primary);
		(void)importer(p, std::move(*src.open_buffer(p)));
	}
	double naive_ms = ms_since(t0);
	std::printf("\n4. imports per 1000 flips of a double-buffered 640x480 guest\n");
	std::printf("   baseline: import every flip   1000 imports, %7.1f ms of tracking + import\n", naive_ms);
	std::printf("   vscanout: id + config LRU     %4llu imports, %7.1f ms of tracking + import\n",
	            (unsigned long long)imports, cached_ms);
}

} // namespace

int main(int argc, char **argv) {
	// An argument picks one benchmark: compose, pipeline or imports.
	const std::string only = argc > 1 ? argv[1] : "";
	wlr_log_init(WLR_ERROR, nullptr);
	auto vk = render::VulkanContext::create({"", getenv("BENCH_NOHOST") != nullptr, false});
	if (!vk) {
		std::fprintf(stderr, "bench: %s\n", vk.error().c_str());
		return 1;
	}
	auto hr = render::HeadRenderer::create(**vk);
	if (!hr) {
		std::fprintf(stderr, "bench: %s\n", hr.error().c_str());
		return 1;
	}
	std::printf("vscanout benchmarks on %s\n", (*vk)->caps().device_name.c_str());
	if (only.empty() || only == "compose") bench_compose(**vk, **hr);
	if (only.empty() || only == "pipeline") bench_pipeline(**vk, **hr);
	if (only.empty() || only == "imports") bench_imports(**vk);
	return 0;
}
