#version 450
// Composes one output frame region: the guest primary placed (1:1 or scaled with aspect kept,
// letterboxed), the software cursor blended over it, or the "no signal" frame. Reads the guest
// buffers and writes the output buffer in place: no images, no intermediate copies.
// Built twice: SOURCE_IMAGE=1 samples the primary from an imported dma-buf image.
// What a frame needs (mode, cursor, pixel layouts) comes as specialization constants, not push
// constants: llvmpipe runs every branch of a shader under execution masks, so a branch must be
// compiled out to cost nothing.
#extension GL_GOOGLE_include_directive : require
#include "font.glsl"

layout(local_size_x = 16, local_size_y = 16) in;

layout(constant_id = 0) const uint SRC_MODE = 0u;   // 0 no signal, 1 nearest, 2 bilinear
layout(constant_id = 1) const uint SRC_LAYOUT = 0u; // core::PixelLayout
layout(constant_id = 2) const uint CUR_ON = 0u;
layout(constant_id = 3) const uint CUR_LAYOUT = 1u;
layout(constant_id = 4) const uint DST_LAYOUT = 0u;

#if SOURCE_IMAGE
layout(set = 0, binding = 0) uniform sampler2D src_image;
#else
layout(std430, set = 0, binding = 0) readonly buffer Src { uint src_words[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer Cur { uint cur_words[]; };
layout(std430, set = 0, binding = 2) buffer Dst { uint dst_words[]; };

// Must match render/head_renderer.cpp ComposeParams.
layout(push_constant) uniform Params {
	ivec2 region_origin; // output pixels this dispatch covers
	ivec2 region_size;
	ivec2 dst_size;
	uint dst_offset;     // bytes
	uint dst_stride;     // bytes
	uint dst_layout_unused;
	uint src_mode_unused;
	ivec2 src_size;
	uint src_offset;
	uint src_stride;
	ivec2 rect_pos;      // where the primary lands on the output
	ivec2 rect_size;
	uint src_layout_unused;
	uint cur_on_unused;
	ivec2 cur_pos;       // cursor image top-left on the output
	ivec2 cur_size;      // its size on the output
	ivec2 cur_src_size;
	uint cur_offset;
	uint cur_stride;
	uint cur_layout_unused;
	int text_scale;      // the no-signal text, see font.glsl
	ivec2 text_origin;
} pc;

const vec3 kNoSignalBackground = vec3(32.0, 32.0, 48.0) / 255.0;
const vec3 kNoSignalText = vec3(224.0, 224.0, 224.0) / 255.0;

// Unpacks one pixel to premultiplied RGBA; formats without alpha are opaque.
vec4 unpack(uint layout_, uint w) {
	if (layout_ == 4u) {
		return vec4(float((w >> 11) & 31u) / 31.0, float((w >> 5) & 63u) / 63.0, float(w & 31u) / 31.0, 1.0);
	}
	vec4 c = unpackUnorm4x8(w); // c.x = byte 0
	vec4 rgba = (layout_ <= 1u) ? vec4(c.z, c.y, c.x, c.w) : c;
	if (layout_ == 0u || layout_ == 2u) rgba.a = 1.0;
	return rgba;
}

uint pack(uint layout_, vec3 rgb) {
	vec4 c = (layout_ <= 1u) ? vec4(rgb.b, rgb.g, rgb.r, 1.0) : vec4(rgb, 1.0);
	return packUnorm4x8(c);
}

uint fetch_word(uint byte_addr) {
#if SOURCE_IMAGE
	return 0u;
#else
	return src_words[byte_addr >> 2];
#endif
}

vec4 src_texel(ivec2 t) {
	t = clamp(t, ivec2(0), pc.src_size - 1);
#if SOURCE_IMAGE
	vec4 c = texelFetch(src_image, t, 0);
	if (SRC_LAYOUT == 0u || SRC_LAYOUT == 2u || SRC_LAYOUT == 4u) c.a = 1.0;
	return c;
#else
	if (SRC_LAYOUT == 4u) {
		uint addr = pc.src_offset + uint(t.y) * pc.src_stride + uint(t.x) * 2u;
		uint w = fetch_word(addr);
		return unpack(4u, (addr & 2u) != 0u ? (w >> 16) : (w & 0xFFFFu));
	}
	return unpack(SRC_LAYOUT, fetch_word(pc.src_offset + uint(t.y) * pc.src_stride + uint(t.x) * 4u));
#endif
}

vec3 primary_at(ivec2 p) {
	ivec2 q = p - pc.rect_pos;
	if (any(lessThan(q, ivec2(0))) || any(greaterThanEqual(q, pc.rect_size))) return vec3(0.0); // letterbox
	if (SRC_MODE == 1u) {
		// Nearest: exact when rect_size == src_size.
		ivec2 t = (q * pc.src_size) / pc.rect_size;
		return src_texel(t).rgb;
	}
	vec2 s = (vec2(q) + 0.5) * vec2(pc.src_size) / vec2(pc.rect_size) - 0.5;
	ivec2 t0 = ivec2(floor(s));
	vec2 f = s - vec2(t0);
	vec3 a = mix(src_texel(t0).rgb, src_texel(t0 + ivec2(1, 0)).rgb, f.x);
	vec3 b = mix(src_texel(t0 + ivec2(0, 1)).rgb, src_texel(t0 + ivec2(1, 1)).rgb, f.x);
	return mix(a, b, f.y);
}

void main() {
	ivec2 local = ivec2(gl_GlobalInvocationID.xy);
	if (any(greaterThanEqual(local, pc.region_size))) return;
	ivec2 p = pc.region_origin + local;
	if (any(lessThan(p, ivec2(0))) || any(greaterThanEqual(p, pc.dst_size))) return;

	vec3 rgb;
	if (SRC_MODE == 0u)
		rgb = no_signal_text(p, pc.text_origin, pc.text_scale) ? kNoSignalText : kNoSignalBackground;
	else
		rgb = primary_at(p);

	if (CUR_ON != 0u) {
		ivec2 q = p - pc.cur_pos;
		if (all(greaterThanEqual(q, ivec2(0))) && all(lessThan(q, pc.cur_size))) {
			ivec2 t = (q * pc.cur_src_size) / pc.cur_size;
			vec4 c = unpack(CUR_LAYOUT, cur_words[(pc.cur_offset + uint(t.y) * pc.cur_stride + uint(t.x) * 4u) >> 2]);
			rgb = c.rgb + (1.0 - c.a) * rgb; // cursor pixels are premultiplied, as KMS has them
		}
	}
	uint addr = pc.dst_offset + uint(p.y) * pc.dst_stride + uint(p.x) * 4u;
	dst_words[addr >> 2] = pack(DST_LAYOUT, rgb);
}
