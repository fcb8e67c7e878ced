// The import and output paths' costs (issue 9), each beside a plain vkCmdCopyBuffer of the same
// frame between two plain Vulkan buffers, measured in the same run:
//   guest first import: GuestImport::create of a guest buffer not seen before, forced onto each
//                       path with ImportPolicy: dmabuf (a udmabuf over a sealed memfd), host (a
//                       memfd, mmap()ed and imported), copy (a memfd copied into a Vulkan buffer);
//   guest per frame:    what a new frame of an imported buffer costs: content_changed() (the
//                       counted memcpy on the copy path, nothing on the others) + HeadRenderer::draw
//                       1:1 (the copy path of the renderer) into a host-memory output;
//   output first use:   OutputTarget::create on a host-memory output buffer (host import, or a
//                       staging buffer), and a dma-buf output buffer imported with
//                       import_dmabuf_buffer;
//   output per frame:   HeadRenderer::draw 1:1 of one guest import into each output. OutputTarget
//                       has no dma-buf form yet (issue 9, item 4): the dma-buf row is the copy that
//                       path will record (vkCmdCopyBuffer into the imported dma-buf, with the queue
//                       family transfers of a foreign buffer), submitted and waited for like a draw.
// The staged output is what OutputTarget falls back to for memory the device cannot import: here
// the output buffer starts 64 bytes into its mapping, so the host import refuses it.
// dma-buf rows need /dev/udmabuf; without it they say so and nothing stands in for them.
//
// Usage: vscanout_import_bench [--seconds S] [--size 1080p|4k|WxH]... [--vulkan-device DEV]
//        vscanout_import_bench --devices
//        vscanout_import_bench --memory [DEV]
// Every case runs for about S seconds (default 1; BENCH_SECONDS too) after two warm-up rounds.
// --devices lists the Vulkan devices, their DRM nodes and the extensions the import and output
// paths use, and exits (bench/gpu-check.sh prints it).
#include <drm_fourcc.h>
#include <fcntl.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "render/command_stream.hpp"
#include "render/dmabuf_import.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"
#include "render/target.hpp"
#include "render/vk_context.hpp"

using namespace vscanout;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Stats {
	size_t n = 0;
	double median = 0, p99 = 0;
	std::string error; // the case could not run: why
};

double seconds_per_case = 1.0;

// Runs fn (which returns the milliseconds it measured, or nullopt with *error set) for about
// seconds_per_case after two warm-up rounds; at least 5 samples, at most 2000.
Stats measure(const std::function<std::optional<double>(std::string *)> &fn) {
	Stats s;
	std::vector<double> v;
	for (int i = 0; i < 2; i++)
		if (!fn(&s.error)) return s;
	const auto t0 = Clock::now();
	while (v.size() < 5 || (ms_since(t0) < seconds_per_case * 1000 && v.size() < 2000)) {
		auto ms = fn(&s.error);
		if (!ms) return s;
		v.push_back(*ms);
	}
	std::sort(v.begin(), v.end());
	s.n = v.size();
	s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
	s.p99 = v[std::min(v.size() - 1, static_cast<size_t>(std::ceil(0.99 * static_cast<double>(v.size()))) - 1)];
	return s;
}

template <typename F> std::optional<double> timed(F &&fn) {
	const auto t0 = Clock::now();
	fn();
	return ms_since(t0);
}

std::string dev_udmabuf_note; // why there are no dma-bufs, or empty
UniqueFd udmabuf_dev;

// A guest buffer: a sealed memfd, mapped, and where /dev/udmabuf opened a udmabuf over it.
struct GuestMem {
	UniqueFd memfd;
	Mapping map;
	UniqueFd dmabuf;
	uint64_t size = 0;
};

Result<UniqueFd> make_udmabuf(int memfd, uint64_t size) {
	udmabuf_create req{static_cast<__u32>(memfd), UDMABUF_FLAGS_CLOEXEC, 0, size};
	UniqueFd fd(::ioctl(udmabuf_dev.get(), UDMABUF_CREATE, &req));
	if (!fd) return fail(std::string("UDMABUF_CREATE failed: ") + std::strerror(errno));
	return fd;
}

Result<GuestMem> make_mem(uint64_t bytes, bool dmabuf) {
	GuestMem g;
	g.size = align_up(bytes, static_cast<uint64_t>(::getpagesize()));
	auto fd = make_memfd("vscanout-bench", g.size); // sealed against shrinking, as udmabuf wants
	if (!fd) return fd.take_error();
	g.memfd = std::move(*fd);
	auto map = Mapping::map(g.memfd.get(), g.size, PROT_READ | PROT_WRITE);
	if (!map) return map.take_error();
	g.map = std::move(*map);
	for (uint64_t i = 0; i < g.size; i += 4) {
		const uint32_t px = static_cast<uint32_t>(i * 2654435761u);
		std::memcpy(g.map.data() + i, &px, 4);
	}
	if (dmabuf && udmabuf_dev) {
		auto d = make_udmabuf(g.memfd.get(), g.size);
		if (!d) return d.take_error();
		g.dmabuf = std::move(*d);
	}
	return g;
}

vgpu::PlaneInfo plane_of(uint32_t w, uint32_t h) {
	vgpu::PlaneInfo p;
	p.state = vgpu::PlaneState::enabled;
	p.drm_format = DRM_FORMAT_XRGB8888;
	p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	p.width = w;
	p.height = h;
	p.stride = w * 4;
	p.size = static_cast<uint32_t>(align_up(uint64_t{w} * 4 * h, static_cast<uint64_t>(::getpagesize())));
	p.buffer_id = 1;
	return p;
}

vgpu::GuestBuffer guest_buffer(const GuestMem &g, render::ImportPath path) {
	vgpu::GuestBuffer b;
	const bool dma = path == render::ImportPath::dmabuf;
	b.fd = UniqueFd(::fcntl(dma ? g.dmabuf.get() : g.memfd.get(), F_DUPFD_CLOEXEC, 0));
	b.kind = dma ? vgpu::BufferKind::dmabuf : vgpu::BufferKind::memfd;
	b.byte_size = g.size;
	return b;
}

render::ImportPolicy policy_for(render::ImportPath path, uint64_t *copies) {
	render::ImportPolicy p;
	p.allow_dmabuf = path == render::ImportPath::dmabuf;
	p.allow_host = path == render::ImportPath::host;
	p.copy_counter = copies;
	return p;
}

// An import forced onto `path`; an error where it took another one.
Result<std::shared_ptr<render::GuestImport>> import_on(const render::VulkanContext &vk, const GuestMem &g,
                                                       const vgpu::PlaneInfo &plane, render::ImportPath path,
                                                       uint64_t *copies) {
	auto imp = render::GuestImport::create(vk, plane, guest_buffer(g, path), policy_for(path, copies));
	if (!imp) return imp.take_error();
	if ((*imp)->kind() != path) {
		std::string why = std::string("took the ") + render::to_string((*imp)->kind()) + " path instead";
		if (path == render::ImportPath::dmabuf) {
			auto direct = render::import_dmabuf_buffer(vk, g.dmabuf.get(), plane.stride * uint64_t{plane.height},
			                                           VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
			if (!direct) why += ": " + direct.error();
		}
		return fail(why);
	}
	return imp;
}

// Plain buffers, a command buffer and a fence of our own: the baseline copy and the dma-buf output.
class RawCopier {
public:
	explicit RawCopier(const render::VulkanContext &vk) : vk_(vk) {}
	Status init() {
		auto s = render::CommandStream::create(vk_);
		if (!s) return s.take_error();
		stream_ = std::move(*s);
		return Ok{};
	}

	struct Plain {
		render::Buffer buffer;
		render::Memory memory;
	};
	// A buffer in device-local memory (any memory where there is none).
	Result<Plain> plain_buffer(VkDeviceSize size) const {
		VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
		bci.size = size;
		bci.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
		VkBuffer buf;
		if (vkCreateBuffer(vk_.device(), &bci, nullptr, &buf) != VK_SUCCESS) return fail("vkCreateBuffer failed");
		Plain p{render::Buffer(vk_.device(), buf), {}};
		VkMemoryRequirements req;
		vkGetBufferMemoryRequirements(vk_.device(), buf, &req);
		int type = vk_.find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
		if (type < 0) type = vk_.find_memory_type(req.memoryTypeBits, 0);
		VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
		mai.allocationSize = req.size;
		mai.memoryTypeIndex = static_cast<uint32_t>(type);
		VkDeviceMemory mem;
		if (VkResult r = vkAllocateMemory(vk_.device(), &mai, nullptr, &mem); r != VK_SUCCESS)
			return fail(std::string("vkAllocateMemory failed: ") + render::vk_result_name(r));
		p.memory = render::Memory(vk_.device(), mem);
		vkBindBufferMemory(vk_.device(), buf, mem, 0);
		return p;
	}

	// Copies size bytes from src to dst, submits, waits. foreign_src/foreign_dst: that buffer is a
	// dma-buf another device owns, taken and handed back around the copy, as HeadRenderer does.
	Status copy(VkBuffer src, VkBuffer dst, VkDeviceSize size, bool foreign_src, bool foreign_dst) {
		stream_.begin();
		const VkCommandBuffer cmd = stream_.cmd();
		std::vector<VkBufferMemoryBarrier> take, give;
		auto ownership = [&](VkBuffer b, VkAccessFlags access) {
			VkBufferMemoryBarrier bb{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
			bb.buffer = b;
			bb.size = VK_WHOLE_SIZE;
			bb.dstAccessMask = access;
			bb.srcQueueFamilyIndex = vk_.foreign_queue_family();
			bb.dstQueueFamilyIndex = vk_.queue_family();
			take.push_back(bb);
			bb.srcAccessMask = access;
			bb.dstAccessMask = 0;
			std::swap(bb.srcQueueFamilyIndex, bb.dstQueueFamilyIndex);
			give.push_back(bb);
		};
		if (foreign_src) ownership(src, VK_ACCESS_TRANSFER_READ_BIT);
		if (foreign_dst) ownership(dst, VK_ACCESS_TRANSFER_WRITE_BIT);
		if (!take.empty())
			vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, nullptr,
			                     static_cast<uint32_t>(take.size()), take.data(), 0, nullptr);
		VkBufferCopy c{0, 0, size};
		vkCmdCopyBuffer(cmd, src, dst, 1, &c);
		if (!give.empty())
			vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0,
			                     nullptr, static_cast<uint32_t>(give.size()), give.data(), 0, nullptr);
		VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
		mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
		mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0,
		                     nullptr);
		return stream_.submit_and_wait();
	}

private:
	const render::VulkanContext &vk_;
	render::CommandStream stream_;
};

void print_row(const char *label, const Stats &s, double base) {
	if (!s.error.empty()) {
		std::printf("  %-46s %s\n", label, s.error.c_str());
		return;
	}
	std::printf("  %-46s %5zu %10.4f %10.4f %8.2f\n", label, s.n, s.median, s.p99, base > 0 ? s.median / base : 0.0);
}

void print_skip(const char *label, const std::string &why) { std::printf("  %-46s %s\n", label, why.c_str()); }

int bench_size(render::VulkanContext &vk, render::HeadRenderer &hr, uint32_t w, uint32_t h) {
	const vgpu::PlaneInfo plane = plane_of(w, h);
	const uint64_t frame = uint64_t{plane.stride} * h;
	const bool dma = !!udmabuf_dev && vk.caps().dmabuf;
	std::string dma_skip = !udmabuf_dev ? dev_udmabuf_note : "skipped (the Vulkan device cannot import dma-bufs)";

	auto guest = make_mem(frame, dma);
	if (!guest) {
		std::printf("%ux%u: cannot make a guest buffer: %s\n", w, h, guest.error().c_str());
		return 1;
	}
	RawCopier raw(vk);
	if (Status s = raw.init(); !s) {
		std::printf("%ux%u: %s\n", w, h, s.error().c_str());
		return 1;
	}

	std::printf("\n%ux%u XRGB8888, %.1f MiB a frame                 n     median        p99   x base\n", w, h,
	            static_cast<double>(frame) / (1 << 20));

	// Baseline: a plain copy of the frame between two plain buffers.
	Stats base;
	{
		auto a = raw.plain_buffer(frame), b = raw.plain_buffer(frame);
		if (!a || !b)
			base.error = !a ? a.error() : b.error();
		else
			base = measure([&](std::string *err) -> std::optional<double> {
				const auto t0 = Clock::now();
				if (Status s = raw.copy(a->buffer.get(), b->buffer.get(), frame, false, false); !s) {
					*err = s.error();
					return std::nullopt;
				}
				return ms_since(t0);
			});
	}
	print_row("baseline: vkCmdCopyBuffer, plain buffers", base, base.median);

	const render::ImportPath paths[] = {render::ImportPath::dmabuf, render::ImportPath::host, render::ImportPath::copy};
	uint64_t copies = 0;

	// The form each path takes here (the dma-buf path: an image with its modifier where the device
	// has VK_EXT_image_drm_format_modifier, else a linear buffer).
	std::string form_label[3];
	bool dmabuf_image = false;
	for (render::ImportPath path : paths) {
		std::string &l = form_label[static_cast<int>(path)];
		l = std::string("  ") + render::to_string(path);
		if (path == render::ImportPath::dmabuf && dma) {
			auto imp = import_on(vk, *guest, plane, path, nullptr);
			if (imp) {
				l += std::string(" (") + render::to_string((*imp)->form()) + ")";
				dmabuf_image = (*imp)->sampled();
			}
		}
	}

	// Guest buffers: the first import of a buffer not seen before.
	std::printf(" guest buffer, first import (GuestImport::create)\n");
	for (render::ImportPath path : paths) {
		const std::string &label = form_label[static_cast<int>(path)];
		if (path == render::ImportPath::dmabuf && !dma) {
			print_skip(label.c_str(), "dmabuf: " + dma_skip);
			continue;
		}
		Stats s = measure([&](std::string *err) -> std::optional<double> {
			std::shared_ptr<render::GuestImport> keep;
			const auto t0 = Clock::now();
			auto imp = import_on(vk, *guest, plane, path, &copies);
			const double ms = ms_since(t0);
			if (!imp) {
				*err = imp.error();
				return std::nullopt;
			}
			keep = std::move(*imp); // destroyed outside the timing
			return ms;
		});
		print_row(label.c_str(), s, base.median);
	}
	// Where GuestImport takes the image form, the linear form it would take without the modifier
	// extension, through the same call GuestImport makes.
	const char *linear_label = "  dmabuf, linear form (import_dmabuf_buffer)";
	if (dmabuf_image) {
		Stats s = measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			auto b = render::import_dmabuf_buffer(
			    vk, guest->dmabuf.get(), frame, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
			const double ms = ms_since(t0);
			if (!b) {
				*err = b.error();
				return std::nullopt;
			}
			return ms;
		});
		print_row(linear_label, s, base.median);
	}

	// The outputs: a host-memory buffer as wlroots' shm and dumb buffers are (the same memfd
	// mapped twice: at 0 for the host import, at 64 for the staged fallback), and a dma-buf.
	auto out_mem = make_mem(frame + 4096, dma);
	if (!out_mem) {
		std::printf("%ux%u: cannot make an output buffer: %s\n", w, h, out_mem.error().c_str());
		return 1;
	}
	const render::TargetDesc host_desc{out_mem->map.data(), plane.stride, w, h, DRM_FORMAT_XRGB8888};
	const render::TargetDesc staged_desc{out_mem->map.data() + 64, plane.stride, w, h, DRM_FORMAT_XRGB8888};
	auto host_target = render::OutputTarget::create(vk, host_desc);
	auto staged_target = render::OutputTarget::create(vk, staged_desc);
	if (!host_target || !staged_target) {
		std::printf("%ux%u: no output target: %s\n", w, h,
		            (!host_target ? host_target.error() : staged_target.error()).c_str());
		return 1;
	}
	render::OutputTarget &guest_out = **host_target; // staged where the device has no host import
	const char *guest_out_name = guest_out.staged() ? "staged" : "host-memory";

	// Guest buffers: a new frame of an imported buffer.
	std::printf(" guest buffer, per frame (content_changed + draw 1:1 into a %s output)\n", guest_out_name);
	std::shared_ptr<render::GuestImport> frame_source; // for the output rows: the first path that worked
	const char *frame_source_name = "";
	for (render::ImportPath path : paths) {
		const std::string label =
		    form_label[static_cast<int>(path)] + (path == render::ImportPath::copy ? " (memcpy + draw)" : "");
		if (path == render::ImportPath::dmabuf && !dma) {
			print_skip(label.c_str(), "dmabuf: " + dma_skip);
			continue;
		}
		auto imp = import_on(vk, *guest, plane, path, &copies);
		if (!imp) {
			print_skip(label.c_str(), imp.error());
			continue;
		}
		Stats s = measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			(*imp)->content_changed(std::nullopt);
			auto r = hr.draw({imp->get(), std::nullopt}, guest_out);
			const double ms = ms_since(t0);
			if (!r) {
				*err = r.error();
				return std::nullopt;
			}
			if (!r->copied) {
				*err = "the renderer did not take its copy path";
				return std::nullopt;
			}
			return ms;
		});
		print_row(label.c_str(), s, base.median);
		if (!frame_source && s.error.empty() && !(*imp)->sampled()) {
			frame_source = *imp;
			frame_source_name = render::to_string(path);
		}
	}
	if (dmabuf_image) {
		auto lin = render::import_dmabuf_buffer(vk, guest->dmabuf.get(), frame,
		                                        VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
		if (!lin) {
			print_skip("  dmabuf, linear form (vkCmdCopyBuffer)", lin.error());
		} else {
			std::memset(guest_out.desc().data, 0, frame);
			Stats s = measure([&](std::string *err) -> std::optional<double> {
				const auto t0 = Clock::now();
				Status st = raw.copy(lin->buffer.get(), guest_out.buffer(), frame, true, false);
				if (!st) {
					*err = st.error();
					return std::nullopt;
				}
				guest_out.finish();
				return ms_since(t0);
			});
			print_row("  dmabuf, linear form (vkCmdCopyBuffer)", s, base.median);
			if (std::memcmp(guest_out.desc().data, guest->map.data(), frame) != 0)
				std::printf("  WARNING: the linear dma-buf copy does not hold the guest frame\n");
		}
	}
	// Pixel check: the last frame drawn is the guest's bytes.
	if (frame_source && std::memcmp(guest_out.desc().data, guest->map.data(), frame) != 0)
		std::printf("  WARNING: the host-memory output does not hold the guest frame\n");

	// Outputs: first use of a new output buffer.
	std::printf(" output buffer, first use (OutputTarget::create; dma-buf: import_dmabuf_buffer)\n");
	const VkBufferUsageFlags out_usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
	auto target_first = [&](const render::TargetDesc &d, bool want_staged) {
		return measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			auto t = render::OutputTarget::create(vk, d);
			const double ms = ms_since(t0);
			if (!t) {
				*err = t.error();
				return std::nullopt;
			}
			if ((*t)->staged() != want_staged) {
				*err = want_staged ? "not staged" : "staged: the device did not import the host memory";
				return std::nullopt;
			}
			return ms;
		});
	};
	print_row("  host (host-memory import)", target_first(host_desc, false), base.median);
	print_row("  staged (staging buffer)", target_first(staged_desc, true), base.median);
	std::optional<render::DmabufBuffer> out_dmabuf;
	if (!dma) {
		print_skip("  dmabuf", "dmabuf: " + dma_skip);
	} else {
		Stats s = measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			auto b = render::import_dmabuf_buffer(vk, out_mem->dmabuf.get(), frame, out_usage);
			const double ms = ms_since(t0);
			if (!b) {
				*err = b.error();
				return std::nullopt;
			}
			if (!out_dmabuf) out_dmabuf = std::move(*b);
			return ms;
		});
		print_row("  dmabuf (linear dma-buf buffer)", s, base.median);
	}

	// Outputs: a frame drawn into each.
	if (!frame_source) {
		std::printf(" output buffer, per frame: no guest import worked\n");
		return 1;
	}
	std::printf(" output buffer, per frame (draw 1:1 of a %s guest import)\n", frame_source_name);
	auto draw_into = [&](render::OutputTarget &t) {
		return measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			auto r = hr.draw({frame_source.get(), std::nullopt}, t);
			const double ms = ms_since(t0);
			if (!r) {
				*err = r.error();
				return std::nullopt;
			}
			return ms;
		});
	};
	if ((*host_target)->staged())
		print_skip("  host", "skipped (the device cannot import host memory)");
	else
		print_row("  host", draw_into(**host_target), base.median);
	print_row("  staged (draw + memcpy out)", draw_into(**staged_target), base.median);
	if (std::memcmp(staged_desc.data, guest->map.data(), frame) != 0)
		std::printf("  WARNING: the staged output does not hold the guest frame\n");
	if (!dma) {
		print_skip("  dmabuf", "dmabuf: " + dma_skip);
	} else if (!out_dmabuf) {
		print_skip("  dmabuf", "no dma-buf output buffer");
	} else {
		std::memset(out_mem->map.data(), 0, frame);
		Stats s = measure([&](std::string *err) -> std::optional<double> {
			const auto t0 = Clock::now();
			Status st =
			    raw.copy(frame_source->buffer(), out_dmabuf->buffer.get(), frame, frame_source->foreign(), true);
			if (!st) {
				*err = st.error();
				return std::nullopt;
			}
			return ms_since(t0);
		});
		print_row("  dmabuf (raw copy: no OutputTarget form yet)", s, base.median);
		if (std::memcmp(out_mem->map.data(), guest->map.data(), frame) != 0)
			std::printf("  WARNING: the dma-buf output does not hold the guest frame\n");
	}
	return 0;
}

const char *type_name(VkPhysicalDeviceType t) {
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
	case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
	default: return "other";
	}
}

// Every device the loader offers, with what vscanout's import and output paths need.
// --memory: the device's memory heaps and types, the largest allocation of each type that
// succeeds (powers of two from 64 KiB to 1 GiB, each freed at once), and the largest host-memory
// import of an anonymous mapping and of a memfd mapping (guest buffers are memfds). A driver
// whose allocations fail below the heap sizes shows here rather than as failed frames.
int probe_memory(const std::string &device) {
	render::ContextOptions opts;
	opts.device = device;
	auto vk = render::VulkanContext::create(opts);
	if (!vk) {
		std::printf("memory probe: %s\n", vk.error().c_str());
		return 1;
	}
	VkPhysicalDeviceMemoryProperties mp;
	vkGetPhysicalDeviceMemoryProperties((*vk)->physical(), &mp);
	std::printf("memory of %s\n", (*vk)->caps().device_name.c_str());
	for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
		std::printf("  heap %u: %.1f MiB%s\n", h, double(mp.memoryHeaps[h].size) / (1 << 20),
		            mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT ? " device-local" : "");
	auto largest = [](const std::function<bool(uint64_t)> &ok) {
		uint64_t best = 0;
		for (uint64_t sz = 64 << 10; sz <= (uint64_t{1} << 30); sz *= 2) {
			if (!ok(sz)) break;
			best = sz;
		}
		return best;
	};
	for (uint32_t t = 0; t < mp.memoryTypeCount; t++) {
		const VkMemoryPropertyFlags f = mp.memoryTypes[t].propertyFlags;
		const uint64_t best = largest([&](uint64_t sz) {
			VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
			mai.allocationSize = sz;
			mai.memoryTypeIndex = t;
			VkDeviceMemory mem;
			if (vkAllocateMemory((*vk)->device(), &mai, nullptr, &mem) != VK_SUCCESS) return false;
			vkFreeMemory((*vk)->device(), mem, nullptr);
			return true;
		});
		std::printf("  type %u (heap %u):%s%s%s%s largest allocation %.2f MiB\n", t, mp.memoryTypes[t].heapIndex,
		            f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT ? " device-local" : "",
		            f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT ? " host-visible" : "",
		            f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT ? " coherent" : "",
		            f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? " cached" : "", double(best) / (1 << 20));
	}
	if (!(*vk)->caps().host_memory) {
		std::printf("  host-memory import: no VK_EXT_external_memory_host\n");
		return 0;
	}
	for (bool memfd : {false, true}) {
		std::string last_error;
		const uint64_t best = largest([&](uint64_t sz) {
			UniqueFd fd;
			if (memfd) {
				auto f = make_memfd("probe", sz);
				if (!f) return false;
				fd = std::move(*f);
			}
			void *p = ::mmap(nullptr, sz, PROT_READ | PROT_WRITE, memfd ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS,
			                 memfd ? fd.get() : -1, 0);
			if (p == MAP_FAILED) return false;
			std::memset(p, 1, sz);
			bool ok;
			{ // released before the unmap
				auto b = (*vk)->import_host_buffer(p, sz, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
				ok = b.ok();
				if (!ok) last_error = b.error();
			}
			::munmap(p, sz);
			return ok;
		});
		std::printf("  host-memory import of %s: largest %.2f MiB%s%s\n",
		            memfd ? "a memfd mapping" : "anonymous memory", double(best) / (1 << 20),
		            last_error.empty() ? "" : "; then: ", last_error.c_str());
	}
	return 0;
}

int list_devices() {
	VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "vscanout-import-bench";
	app.apiVersion = VK_API_VERSION_1_2;
	VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ici.pApplicationInfo = &app;
	VkInstance inst;
	if (VkResult r = vkCreateInstance(&ici, nullptr, &inst); r != VK_SUCCESS) {
		std::printf("vkCreateInstance failed: %s (no Vulkan loader or driver?)\n", render::vk_result_name(r));
		return 1;
	}
	uint32_t n = 0;
	vkEnumeratePhysicalDevices(inst, &n, nullptr);
	std::vector<VkPhysicalDevice> devs(n);
	vkEnumeratePhysicalDevices(inst, &n, devs.data());
	if (n == 0) std::printf("no Vulkan device\n");
	const char *wanted[] = {
	    VK_EXT_EXTERNAL_MEMORY_DMA_BUF_EXTENSION_NAME,   VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME,
	    VK_EXT_IMAGE_DRM_FORMAT_MODIFIER_EXTENSION_NAME, VK_EXT_PHYSICAL_DEVICE_DRM_EXTENSION_NAME,
	    VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME,      VK_KHR_EXTERNAL_SEMAPHORE_FD_EXTENSION_NAME,
	    VK_EXT_QUEUE_FAMILY_FOREIGN_EXTENSION_NAME};
	for (uint32_t i = 0; i < n; i++) {
		uint32_t ne = 0;
		vkEnumerateDeviceExtensionProperties(devs[i], nullptr, &ne, nullptr);
		std::vector<VkExtensionProperties> exts(ne);
		vkEnumerateDeviceExtensionProperties(devs[i], nullptr, &ne, exts.data());
		auto has = [&](const char *name) {
			return std::any_of(exts.begin(), exts.end(),
			                   [&](const auto &e) { return std::strcmp(e.extensionName, name) == 0; });
		};
		VkPhysicalDeviceDrmPropertiesEXT drm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRM_PROPERTIES_EXT};
		VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
		VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
		p2.pNext = &driver;
		if (has(VK_EXT_PHYSICAL_DEVICE_DRM_EXTENSION_NAME)) driver.pNext = &drm;
		vkGetPhysicalDeviceProperties2(devs[i], &p2);
		std::printf("device %u: %s (%s; driver %s %s; Vulkan %u.%u)\n", i, p2.properties.deviceName,
		            type_name(p2.properties.deviceType), driver.driverName, driver.driverInfo,
		            VK_API_VERSION_MAJOR(p2.properties.apiVersion), VK_API_VERSION_MINOR(p2.properties.apiVersion));
		if (has(VK_EXT_PHYSICAL_DEVICE_DRM_EXTENSION_NAME)) {
			std::printf("  DRM nodes: primary %s, render %s\n",
			            drm.hasPrimary ? render::dev_text(makedev(static_cast<unsigned>(drm.primaryMajor),
			                                                      static_cast<unsigned>(drm.primaryMinor)))
			                                 .c_str()
			                           : "none",
			            drm.hasRender ? render::dev_text(makedev(static_cast<unsigned>(drm.renderMajor),
			                                                     static_cast<unsigned>(drm.renderMinor)))
			                                .c_str()
			                          : "none");
		} else {
			std::printf("  DRM nodes: not told (no VK_EXT_physical_device_drm)\n");
		}
		for (const char *w : wanted) std::printf("  %-36s %s\n", w, has(w) ? "yes" : "no");
	}
	vkDestroyInstance(inst, nullptr);
	return 0;
}

bool parse_size(const std::string &s, uint32_t &w, uint32_t &h) {
	if (s == "1080p") return w = 1920, h = 1080, true;
	if (s == "4k" || s == "4K" || s == "2160p") return w = 3840, h = 2160, true;
	unsigned a = 0, b = 0;
	char x = 0;
	if (std::sscanf(s.c_str(), "%u%c%u", &a, &x, &b) == 3 && x == 'x' && a > 0 && b > 0 && a <= 8192 && b <= 8192)
		return w = a, h = b, true;
	return false;
}

} // namespace

int main(int argc, char **argv) {
	std::vector<std::pair<uint32_t, uint32_t>> sizes;
	std::string device;
	if (const char *e = std::getenv("BENCH_SECONDS")) seconds_per_case = std::atof(e);
	for (int i = 1; i < argc; i++) {
		const std::string a = argv[i];
		const bool has_value = i + 1 < argc;
		if (a == "--seconds" && has_value) {
			seconds_per_case = std::atof(argv[++i]);
		} else if (a == "--size" && has_value) {
			uint32_t w, h;
			if (!parse_size(argv[++i], w, h)) {
				std::fprintf(stderr, "import bench: --size takes 1080p, 4k or WxH, not '%s'\n", argv[i]);
				return 2;
			}
			sizes.emplace_back(w, h);
		} else if (a == "--devices") {
			return list_devices();
		} else if (a == "--memory") {
			return probe_memory(i + 1 < argc ? argv[i + 1] : "");
		} else if ((a == "--vulkan-device" || a == "--vk-device") && has_value) {
			device = argv[++i];
		} else {
			std::fprintf(stderr,
			             "Usage: %s [--seconds S] [--size 1080p|4k|WxH]... [--vulkan-device DEV]\n"
			             "       %s --devices\n"
			             "       %s --memory [DEV]\n",
			             argv[0], argv[0], argv[0]);
			return 2;
		}
	}
	if (!(seconds_per_case > 0)) seconds_per_case = 1.0;
	if (sizes.empty()) sizes = {{1920, 1080}, {3840, 2160}};

	auto vk = render::VulkanContext::create(render::ContextOptions{.device = device});
	if (!vk) {
		std::fprintf(stderr, "import bench: %s\n", vk.error().c_str());
		return 1;
	}
	auto hr = render::HeadRenderer::create(**vk);
	if (!hr) {
		std::fprintf(stderr, "import bench: %s\n", hr.error().c_str());
		return 1;
	}
	udmabuf_dev = UniqueFd(::open("/dev/udmabuf", O_RDWR | O_CLOEXEC));
	if (!udmabuf_dev)
		dev_udmabuf_note = errno == ENOENT ? "skipped (no /dev/udmabuf here)"
		                                   : std::string("skipped (/dev/udmabuf: ") + std::strerror(errno) + ")";

	const render::DeviceCaps &caps = (*vk)->caps();
	std::printf("vscanout import bench on %s (%s)\n", caps.device_name.c_str(), (*vk)->device_reason().c_str());
	std::printf("imports: dma-buf %s, host memory %s; /dev/udmabuf: %s\n",
	            caps.dmabuf ? (caps.drm_modifier ? "with modifiers" : "without modifiers") : "no",
	            caps.host_memory ? "yes" : "no", udmabuf_dev ? "open" : "not usable");
	if (!udmabuf_dev) std::printf("dmabuf: %s\n", dev_udmabuf_note.c_str());
	std::printf("each case ~%.1f s after 2 warm-ups; ms; x base = median / baseline median; every frame is "
	            "submitted and waited for\n",
	            seconds_per_case);
	int rc = 0;
	for (auto [w, h] : sizes) rc |= bench_size(**vk, **hr, w, h);
	return rc;
}
