// Scaled compose benchmark (issue 12): each scaled case beside, in the same run, pixman's
// bilinear scaling of the same frame into the same output (one thread: bars, the picture, the
// cursor over it: the same picture) and a plain Vulkan copy of the guest frame. Median and p99
// of N frames, and the ratio vscanout / pixman. Also the no-signal frame: the first of a size
// (drawn) and the next ones (copied). Render layer and pixman only, no wlroots.
//   vscanout_compose_bench [N]
#include <drm_fourcc.h>
#include <fcntl.h>
#include <pixman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "render/dmabuf_export.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"

using namespace vscanout;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
	double median = 0, p99 = 0;
};
Stats summarize(std::vector<double> v) {
	std::sort(v.begin(), v.end());
	return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}
template <typename F> Stats time_it(int n, F &&fn) {
	std::vector<double> t;
	for (int i = 0; i < n + 3; i++) {
		auto t0 = Clock::now();
		fn();
		if (i >= 3) t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
	}
	return summarize(t);
}

// Several contenders timed in turns, one frame each per round, so that a machine whose load
// changes during the run (shared CI hosts) weighs on all of them alike.
std::vector<Stats> time_in_turns(int n, const std::vector<std::function<void()>> &fns) {
	std::vector<std::vector<double>> t(fns.size());
	for (int i = 0; i < n + 3; i++)
		for (size_t k = 0; k < fns.size(); k++) {
			auto t0 = Clock::now();
			fns[k]();
			if (i >= 3) t[k].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
		}
	std::vector<Stats> out;
	for (auto &v : t) out.push_back(summarize(v));
	return out;
}

// A memfd mapped read-write, as guest buffers and wlroots' shm output buffers are.
struct Shm {
	UniqueFd fd;
	Mapping map;
	uint64_t bytes = 0;
	explicit Shm(uint64_t size) : bytes(align_up(size, 4096)) {
		fd = std::move(*make_memfd("compose-bench", bytes));
		map = std::move(*Mapping::map(fd.get(), bytes, PROT_READ | PROT_WRITE));
	}
};

struct Guest {
	Shm shm;
	vgpu::PlaneInfo plane;
	std::shared_ptr<render::GuestImport> import;
	Guest(const render::VulkanContext &vk, uint32_t w, uint32_t h, uint32_t fourcc, vgpu::PlaneType type)
	    : shm(uint64_t{w} * 4 * h) {
		plane.type = type;
		plane.state = vgpu::PlaneState::enabled;
		plane.drm_format = fourcc;
		plane.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
		plane.width = w;
		plane.height = h;
		plane.stride = w * 4;
		plane.size = w * 4 * h;
		// Something like a desktop: gradients, no solid runs for anyone to take a short cut on.
		auto *px = reinterpret_cast<uint32_t *>(shm.map.data());
		for (uint32_t y = 0; y < h; y++)
			for (uint32_t x = 0; x < w; x++)
				px[uint64_t{y} * w + x] =
				    type == vgpu::PlaneType::cursor
				        ? ((x / 8 + y / 8) % 2 ? 0xFFFFFFFFu : 0x80404040u)
				        : 0xFF000000u | ((x * 255 / w) << 16) | ((y * 255 / h) << 8) | ((x ^ y) & 0xFF);
		vgpu::GuestBuffer b;
		b.fd = UniqueFd(::fcntl(shm.fd.get(), F_DUPFD_CLOEXEC, 0));
		b.byte_size = shm.bytes;
		auto imp = render::GuestImport::create(vk, plane, std::move(b), render::ImportPolicy{});
		if (!imp) {
			std::fprintf(stderr, "compose_bench: import: %s\n", imp.error().c_str());
			std::exit(1);
		}
		import = std::move(*imp);
	}
};

struct Output {
	Shm shm;
	render::TargetDesc desc;
	std::unique_ptr<render::OutputTarget> target;
	Output(const render::VulkanContext &vk, uint32_t w, uint32_t h) : shm(uint64_t{w} * 4 * h) {
		desc = {shm.map.data(), w * 4, w, h, DRM_FORMAT_XRGB8888};
		auto t = render::OutputTarget::create(vk, desc);
		if (!t) {
			std::fprintf(stderr, "compose_bench: output: %s\n", t.error().c_str());
			std::exit(1);
		}
		target = std::move(*t);
	}
};

// pixman, one thread: the bars filled black, the guest frame scaled bilinear (edge texels
// repeated, as vscanout clamps), the cursor scaled by nearest and blended over.
struct Pixman {
	pixman_image_t *src, *cursor, *dst;
	render::Rect place, cur;
	Pixman(Guest &g, Guest &c, Output &o, int32_t cx, int32_t cy) {
		src = pixman_image_create_bits(PIXMAN_x8r8g8b8, int(g.plane.width), int(g.plane.height),
		                               reinterpret_cast<uint32_t *>(g.shm.map.data()), int(g.plane.stride));
		cursor = pixman_image_create_bits(PIXMAN_a8r8g8b8, int(c.plane.width), int(c.plane.height),
		                                  reinterpret_cast<uint32_t *>(c.shm.map.data()), int(c.plane.stride));
		dst = pixman_image_create_bits(PIXMAN_x8r8g8b8, int(o.desc.width), int(o.desc.height),
		                               static_cast<uint32_t *>(o.desc.data), int(o.desc.stride));
		place = render::place_frame(g.plane.width, g.plane.height, o.desc.width, o.desc.height);
		cur = render::cursor_rect(place, g.plane.width, g.plane.height, cx, cy, c.plane.width, c.plane.height);
		pixman_transform_t t;
		pixman_transform_init_scale(&t, pixman_double_to_fixed(double(g.plane.width) / place.w),
		                            pixman_double_to_fixed(double(g.plane.height) / place.h));
		pixman_image_set_transform(src, &t);
		pixman_image_set_filter(src, PIXMAN_FILTER_BILINEAR, nullptr, 0);
		pixman_image_set_repeat(src, PIXMAN_REPEAT_PAD);
		pixman_transform_init_scale(&t, pixman_double_to_fixed(double(c.plane.width) / cur.w),
		                            pixman_double_to_fixed(double(c.plane.height) / cur.h));
		pixman_image_set_transform(cursor, &t);
		pixman_image_set_filter(cursor, PIXMAN_FILTER_NEAREST, nullptr, 0);
	}
	~Pixman() {
		pixman_image_unref(src);
		pixman_image_unref(cursor);
		pixman_image_unref(dst);
	}
	// bars false: the picture and the cursor only (what a frame needs once the bars are there).
	void draw(bool bars = true) {
		const int W = pixman_image_get_width(dst), H = pixman_image_get_height(dst);
		pixman_box32_t boxes[4];
		int n = 0;
		auto bar = [&](int x0, int y0, int x1, int y1) {
			if (x1 > x0 && y1 > y0) boxes[n++] = {x0, y0, x1, y1};
		};
		bar(0, 0, W, place.y);
		bar(0, place.y + place.h, W, H);
		bar(0, place.y, place.x, place.y + place.h);
		bar(place.x + place.w, place.y, W, place.y + place.h);
		const pixman_color_t black{0, 0, 0, 0xFFFF};
		if (n && bars) pixman_image_fill_boxes(PIXMAN_OP_SRC, dst, &black, n, boxes);
		pixman_image_composite32(PIXMAN_OP_SRC, src, nullptr, dst, 0, 0, 0, 0, place.x, place.y, place.w, place.h);
		pixman_image_composite32(PIXMAN_OP_OVER, cursor, nullptr, dst, 0, 0, 0, 0, cur.x, cur.y, cur.w, cur.h);
	}
};

void line(const char *what, const Stats &s, const Stats *pixman) {
	std::printf("   %-40s %8.3f %8.3f", what, s.median, s.p99);
	if (pixman) std::printf("   %5.2f", s.median / pixman->median);
	std::printf("\n");
}

// The guest frame and an output of ow x oh in device memory: exported dma-bufs, the guest's
// filled by drawing the host-memory guest into it 1:1. Null (and why) where the device cannot.
struct DeviceLocal {
	render::ExportedBuffer guest_mem, out_mem;
	std::shared_ptr<render::GuestImport> guest;
	std::unique_ptr<render::OutputTarget> out;
};
constexpr VkBufferUsageFlags kExportUsage =
    VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
Result<std::unique_ptr<DeviceLocal>> device_local(const render::VulkanContext &vk, render::HeadRenderer &hr,
                                                  const Guest &g, uint32_t ow, uint32_t oh) {
	auto d = std::make_unique<DeviceLocal>();
	auto target_on = [&](const render::ExportedBuffer &e, uint32_t w, uint32_t h) {
		render::TargetDesc desc{nullptr, w * 4, w, h, DRM_FORMAT_XRGB8888};
		desc.dmabuf_fd = e.fd.get();
		desc.modifier = DRM_FORMAT_MOD_LINEAR;
		return render::OutputTarget::create(vk, desc);
	};
	auto gm = render::export_dmabuf_buffer(vk, g.plane.size, kExportUsage);
	if (!gm) return gm.take_error();
	d->guest_mem = std::move(*gm);
	auto fill = target_on(d->guest_mem, g.plane.width, g.plane.height);
	if (!fill) return fill.take_error();
	if (auto r = hr.draw(render::FrameDesc{g.import.get(), std::nullopt}, **fill); !r) return r.take_error();
	vgpu::GuestBuffer b;
	b.fd = UniqueFd(::fcntl(d->guest_mem.fd.get(), F_DUPFD_CLOEXEC, 0));
	b.kind = vgpu::BufferKind::dmabuf;
	b.byte_size = d->guest_mem.size;
	auto imp = render::GuestImport::create(vk, g.plane, std::move(b), render::ImportPolicy{});
	if (!imp) return imp.take_error();
	if ((*imp)->kind() != render::ImportPath::dmabuf) return fail("the exported guest did not import as a dma-buf");
	d->guest = std::move(*imp);
	auto om = render::export_dmabuf_buffer(vk, uint64_t{ow} * 4 * oh, kExportUsage);
	if (!om) return om.take_error();
	d->out_mem = std::move(*om);
	auto out = target_on(d->out_mem, ow, oh);
	if (!out) return out.take_error();
	d->out = std::move(*out);
	return d;
}

} // namespace

int main(int argc, char **argv) {
	const int N = argc > 1 ? std::max(5, std::atoi(argv[1])) : 60;
	auto vk = render::VulkanContext::create();
	if (!vk) {
		std::fprintf(stderr, "compose_bench: %s\n", vk.error().c_str());
		return 1;
	}
	auto hr = render::HeadRenderer::create(**vk);
	auto shader = render::HeadRenderer::create(**vk, render::RendererOptions{render::ComposePath::gpu});
	if (!hr || !shader) {
		std::fprintf(stderr, "compose_bench: %s\n", (!hr ? hr : shader).error().c_str());
		return 1;
	}
	const bool cpu = (*hr)->compose_path() == render::ComposePath::cpu;
	std::printf("vscanout compose benchmark on %s: scaled frames composed %s\n", (*vk)->caps().device_name.c_str(),
	            cpu ? "on the CPU (the device is a CPU)" : "by the shader");
	std::printf("%d frames per figure, ms; ratio: median / pixman's median. Contenders take turns frame by frame.\n"
	            "pixman fills the bars, scales the frame (bilinear, edges repeated) and blends the cursor\n"
	            "(nearest) each frame; vscanout's CPU compose writes a buffer's bars once per geometry, so\n"
	            "pixman without the bars is shown too.\n",
	            N);

	const std::string export_note = render::dmabuf_export_unsupported(**vk, kExportUsage);
	if (!export_note.empty()) std::printf("(no device-memory rows: %s)\n", export_note.c_str());

	struct Case {
		const char *name;
		uint32_t gw, gh, ow, oh;
	};
	const Case cases[] = {{"downscale 1920x1080 -> 1280x1024", 1920, 1080, 1280, 1024},
	                      {"upscale 1024x768 -> 1920x1080", 1024, 768, 1920, 1080},
	                      {"1920x1080 -> 3840x2160", 1920, 1080, 3840, 2160}};
	for (const Case &c : cases) {
		Guest g(**vk, c.gw, c.gh, DRM_FORMAT_XRGB8888, vgpu::PlaneType::primary);
		Guest cur(**vk, 64, 64, DRM_FORMAT_ARGB8888, vgpu::PlaneType::cursor);
		Output same(**vk, c.gw, c.gh), out(**vk, c.ow, c.oh);
		const int32_t cx = int32_t(c.gw / 3), cy = int32_t(c.gh / 4);
		const int n = c.ow * c.oh > 4000000 ? std::max(5, N / 2) : N;
		// pixman draws into buffers of its own, so vscanout's buffer holds only what vscanout drew.
		Output pix_out(**vk, c.ow, c.oh);
		Pixman px(g, cur, pix_out, cx, cy), px_nobars(g, cur, pix_out, cx, cy);
		const render::FrameDesc frame{g.import.get(), render::SoftwareCursor{cur.import.get(), cx, cy}};
		const auto turns =
		    time_in_turns(n, {[&] { (void)(*hr)->copy_only(*g.import, *same.target); }, [&] { px.draw(); },
		                      [&] { px_nobars.draw(false); }, [&] { (void)(*hr)->draw(frame, *out.target); }});
		const Stats copy = turns[0], pix = turns[1], pix_nobars = turns[2], vs = turns[3];
		// On a CPU device the shader is far slower: fewer frames of it, after the others.
		const Stats sh = time_it(cpu ? std::max(5, n / 4) : n, [&] { (void)(*shader)->draw(frame, *out.target); });
		std::printf("\n%s, cursor 64x64 blended (%d frames)                 median      p99  vs pixman\n", c.name, n);
		line("baseline: plain Vulkan copy of the frame", copy, nullptr);
		line("baseline: pixman bilinear, one thread", pix, nullptr);
		line("  pixman without the bars", pix_nobars, nullptr);
		line(cpu ? "vscanout (CPU compose)" : "vscanout (shader)", vs, &pix);
		if (cpu) line("vscanout shader on this device", sh, &pix);
		if (export_note.empty()) {
			auto dl = device_local(**vk, **hr, g, c.ow, c.oh);
			if (!dl) {
				std::printf("   guest and output in device memory: %s\n", dl.error().c_str());
				continue;
			}
			const render::FrameDesc dframe{(*dl)->guest.get(), render::SoftwareCursor{cur.import.get(), cx, cy}};
			const Stats d = time_it(n, [&] { (void)(*shader)->draw(dframe, *(*dl)->out); });
			line("vscanout shader, guest + output in device memory", d, &pix);
			std::printf("     (guest import form: %s)\n", render::to_string((*dl)->guest->form()));
		}
	}

	std::printf("\nno-signal frame                                      median      p99\n");
	for (auto [w, h] : {std::pair<uint32_t, uint32_t>{1280, 1024}, {1920, 1080}, {3840, 2160}}) {
		auto r = render::HeadRenderer::create(**vk);
		Output out(**vk, w, h);
		auto t0 = Clock::now();
		(void)(*r)->draw({}, *out.target);
		const double first = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
		const Stats again = time_it(N, [&] { (void)(*r)->draw({}, *out.target); });
		char what[96];
		std::snprintf(what, sizeof what, "%ux%u: first (drawn) %.3f; then (copied)", w, h, first);
		line(what, again, nullptr);
	}
	return 0;
}
