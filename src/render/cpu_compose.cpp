#include "render/cpu_compose.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VSCANOUT_X86 1
#endif

namespace vscanout::render {
namespace {

using core::PixelLayout;

constexpr int kFrac = 7;                 // cached rows: value * 128
constexpr int kOne = 1 << 15;            // weights, both directions: w / 32768 (mulhrs), at most 32767
constexpr uint32_t kPrefetchAhead = 384; // output columns (tuned on lavapipe's host, an EPYC)
constexpr uint64_t kStreamBytes = 16u << 20;
constexpr uint32_t kOpaqueBlack = 0xFF000000u; // every 32-bit layout keeps alpha/X in byte 3

// Output layouts whose bytes are R G B X rather than B G R X.
bool rgb_order(PixelLayout l) { return l == PixelLayout::xbgr8888 || l == PixelLayout::abgr8888; }

// (a * b + 2^14) >> 15, as _mm256_mulhrs_epi16 computes it.
inline int mulhrs(int a, int b) { return (a * b + (1 << 14)) >> 15; }

struct RowTaps {
	uint32_t r0, r1;
	int v; // 0..32767, the weight of r1
};

// s = (q + 0.5) * src / dst - 0.5 (compose.comp's primary_at), texels clamped to the frame.
void taps(uint32_t q, uint32_t src, uint32_t dst, int64_t *t0, double *f) {
	const double s = (q + 0.5) * double(src) / double(dst) - 0.5;
	const double fl = std::floor(s);
	*t0 = static_cast<int64_t>(fl);
	*f = s - fl;
}

RowTaps row_taps(uint32_t q, uint32_t src, uint32_t dst) {
	int64_t t0;
	double f;
	taps(q, src, dst, &t0, &f);
	int v = static_cast<int>(std::lround(f * kOne));
	if (v >= kOne) {
		t0++;
		v = 0;
	}
	const int64_t last = int64_t{src} - 1;
	if (t0 < 0) return {0, 0, 0};
	if (t0 >= last) return {uint32_t(last), uint32_t(last), 0};
	return {uint32_t(t0), uint32_t(t0 + 1), v};
}

// ---------------------------------------------------------------------------------------------
// Kernels. Each has a scalar form and, on x86, an AVX2 one with the same arithmetic.

// dst[4x + c] = (p[i][c] << 7) + mulhrs((p[i + 1][c] - p[i][c]) << 7, w) for x in [from, n): the
// blend of the pair at 7 fraction bits.
void hscale_scalar(const uint8_t *src, const uint32_t *index, const int16_t *weights, int16_t *dst, uint32_t from,
                   uint32_t n) {
	for (uint32_t x = from; x < n; x++) {
		const uint8_t *p = src + uint64_t{index[x]} * 4;
		for (int c = 0; c < 4; c++)
			dst[x * 4 + c] = int16_t((p[c] << kFrac) + mulhrs((p[4 + c] - p[c]) << kFrac, weights[x * 4 + c]));
	}
}

// out = ((h0 + mulhrs(h1 - h0, v)) + 64) >> 7 per channel, packed with byte 3 opaque and R/B
// swapped for R G B outputs; n pixels.
void vblend_scalar(const int16_t *h0, const int16_t *h1, int v, uint8_t *out, uint32_t from, uint32_t n, bool swap) {
	for (uint32_t x = from; x < n; x++) {
		uint8_t px[4];
		for (int c = 0; c < 3; c++) {
			const int a = h0[x * 4 + c], b = h1[x * 4 + c];
			px[c] = uint8_t((a + mulhrs(b - a, v) + 64) >> kFrac);
		}
		out[x * 4 + 0] = swap ? px[2] : px[0];
		out[x * 4 + 1] = px[1];
		out[x * 4 + 2] = swap ? px[0] : px[2];
		out[x * 4 + 3] = 0xFF;
	}
}

#ifdef VSCANOUT_X86
__attribute__((target("avx2"))) void hscale_avx2(const uint8_t *src, const uint32_t *index, const int16_t *weights,
                                                 const uint32_t *perm, int16_t *dst, uint32_t n) {
	// Pairs as loaded, (i0 i0+1 | i1 i1+1 || i2 i2+1 | i3 i3+1), to firsts then seconds.
	const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
	uint32_t x = 0;
	for (; x + 4 <= n; x += 4) {
		// The source row streams in from memory (the guest wrote it): ask for it ahead of use.
		// (index has kPrefetchAhead entries of padding.)
		_mm_prefetch(reinterpret_cast<const char *>(src + uint64_t{index[x + kPrefetchAhead]} * 4), _MM_HINT_T0);
		__m256i p;
		const uint32_t *pm = perm + x * 2;
		if (pm[0] != ~0u) {
			// The group's pixels lie within eight source pixels from index[x]: one load, and a
			// permutation to (i0 i1 i2 i3 || i0+1 i1+1 i2+1 i3+1).
			const __m256i span = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + uint64_t{index[x]} * 4));
			p = _mm256_permutevar8x32_epi32(span, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(pm)));
		} else {
			const __m128i p0 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + uint64_t{index[x]} * 4));
			const __m128i p1 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + uint64_t{index[x + 1]} * 4));
			const __m128i p2 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + uint64_t{index[x + 2]} * 4));
			const __m128i p3 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + uint64_t{index[x + 3]} * 4));
			p = _mm256_set_m128i(_mm_unpacklo_epi64(p2, p3), _mm_unpacklo_epi64(p0, p1));
			p = _mm256_permutevar8x32_epi32(p, split);
		}
		const __m256i first = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(p)), kFrac);
		const __m256i second = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(p, 1)), kFrac);
		const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(weights + x * 4));
		const __m256i h = _mm256_add_epi16(first, _mm256_mulhrs_epi16(_mm256_sub_epi16(second, first), w));
		_mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + x * 4), h);
	}
	// Clean upper halves before any SSE code runs (ours, pixman's, the compositor's): GCC leaves
	// them dirty on a tail call, and legacy SSE then runs several times slower.
	_mm256_zeroupper();
	hscale_scalar(src, index, weights, dst, x, n);
}

// count opaque black pixels.
__attribute__((target("avx2"))) void fill_black_avx2(uint32_t *p, uint64_t count) {
	const __m256i black = _mm256_set1_epi32(int(kOpaqueBlack));
	uint64_t i = 0;
	for (; i + 8 <= count; i += 8) _mm256_storeu_si256(reinterpret_cast<__m256i *>(p + i), black);
	_mm256_zeroupper();
	for (; i < count; i++) p[i] = kOpaqueBlack;
}

__attribute__((target("avx2"))) void vblend_avx2(const int16_t *h0, const int16_t *h1, int v, uint8_t *out, uint32_t n,
                                                 bool swap, bool stream) {
	const __m256i vv = _mm256_set1_epi16(int16_t(v));
	const __m256i round = _mm256_set1_epi16(64);
	const __m256i opaque = _mm256_set1_epi32(int(kOpaqueBlack));
	const __m256i rb = _mm256_setr_epi8(2, 1, 0, 3, 6, 5, 4, 7, 10, 9, 8, 11, 14, 13, 12, 15, //
	                                    2, 1, 0, 3, 6, 5, 4, 7, 10, 9, 8, 11, 14, 13, 12, 15);
	uint32_t x = 0;
	if (stream) {
		// Streaming stores want 32-byte alignment: the pixels before it the plain way.
		const uint32_t head = std::min<uint32_t>(n, ((32 - (reinterpret_cast<uintptr_t>(out) & 31)) & 31) / 4);
		if ((reinterpret_cast<uintptr_t>(out) & 3) == 0) {
			vblend_scalar(h0, h1, v, out, 0, head, swap);
			x = head;
		} else {
			stream = false;
		}
	}
	for (; x + 8 <= n; x += 8) {
		const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h0 + x * 4));
		const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h1 + x * 4));
		const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h0 + x * 4 + 16));
		const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(h1 + x * 4 + 16));
		__m256i r0 = _mm256_add_epi16(a0, _mm256_mulhrs_epi16(_mm256_sub_epi16(b0, a0), vv));
		__m256i r1 = _mm256_add_epi16(a1, _mm256_mulhrs_epi16(_mm256_sub_epi16(b1, a1), vv));
		r0 = _mm256_srli_epi16(_mm256_add_epi16(r0, round), kFrac);
		r1 = _mm256_srli_epi16(_mm256_add_epi16(r1, round), kFrac);
		// packus interleaves the lanes: (r0 lo, r1 lo, r0 hi, r1 hi); put them back in order.
		__m256i px = _mm256_permute4x64_epi64(_mm256_packus_epi16(r0, r1), 0xD8);
		px = _mm256_or_si256(px, opaque);
		if (swap) px = _mm256_shuffle_epi8(px, rb);
		if (stream)
			_mm256_stream_si256(reinterpret_cast<__m256i *>(out + x * 4), px);
		else
			_mm256_storeu_si256(reinterpret_cast<__m256i *>(out + x * 4), px);
	}
	if (stream) _mm_sfence();
	_mm256_zeroupper();
	vblend_scalar(h0, h1, v, out, x, n, swap);
}
#endif

// One source row as B G R X bytes (what the kernels read), and one more pixel repeating the
// last, so that the pair (i, i + 1) can always be read.
void convert_row(const uint8_t *src, uint32_t w, PixelLayout layout, uint8_t *dst) {
	switch (layout) {
	case PixelLayout::xrgb8888:
	case PixelLayout::argb8888: std::memcpy(dst, src, uint64_t{w} * 4); break;
	case PixelLayout::xbgr8888:
	case PixelLayout::abgr8888:
		for (uint32_t x = 0; x < w; x++) {
			dst[x * 4 + 0] = src[x * 4 + 2];
			dst[x * 4 + 1] = src[x * 4 + 1];
			dst[x * 4 + 2] = src[x * 4 + 0];
			dst[x * 4 + 3] = 0xFF;
		}
		break;
	case PixelLayout::rgb565:
		for (uint32_t x = 0; x < w; x++) {
			uint16_t p;
			std::memcpy(&p, src + x * 2, 2);
			const int r = (p >> 11) & 31, g = (p >> 5) & 63, b = p & 31;
			dst[x * 4 + 0] = uint8_t((b * 255 + 15) / 31);
			dst[x * 4 + 1] = uint8_t((g * 255 + 31) / 63);
			dst[x * 4 + 2] = uint8_t((r * 255 + 15) / 31);
			dst[x * 4 + 3] = 0xFF;
		}
		break;
	}
	std::memcpy(dst + uint64_t{w} * 4, dst + uint64_t{w - 1} * 4, 4);
}

// round(v / 255) for v in [0, 255 * 255].
inline int div255(int v) { return (v + 128 + ((v + 128) >> 8)) >> 8; }

// A cursor texel as premultiplied R G B A bytes (compose.comp's unpack: X formats are opaque).
void cursor_texel(const CpuImage &c, uint32_t tx, uint32_t ty, int rgba[4]) {
	const uint8_t *p = c.data + uint64_t{ty} * c.stride;
	switch (c.layout) {
	case PixelLayout::rgb565: {
		uint16_t w;
		std::memcpy(&w, p + uint64_t{tx} * 2, 2);
		rgba[0] = (((w >> 11) & 31) * 255 + 15) / 31;
		rgba[1] = (((w >> 5) & 63) * 255 + 31) / 63;
		rgba[2] = ((w & 31) * 255 + 15) / 31;
		rgba[3] = 255;
		return;
	}
	case PixelLayout::xrgb8888:
	case PixelLayout::argb8888:
		p += uint64_t{tx} * 4;
		rgba[0] = p[2], rgba[1] = p[1], rgba[2] = p[0];
		rgba[3] = c.layout == PixelLayout::argb8888 ? p[3] : 255;
		return;
	case PixelLayout::xbgr8888:
	case PixelLayout::abgr8888:
		p += uint64_t{tx} * 4;
		rgba[0] = p[0], rgba[1] = p[1], rgba[2] = p[2];
		rgba[3] = c.layout == PixelLayout::abgr8888 ? p[3] : 255;
		return;
	}
}

// Blends the cursor into output row y, columns [x0, x1) clipped to the cursor.
void blend_cursor_row(const CpuCursor &cur, const CpuImage &out, uint32_t y) {
	const Rect &r = cur.rect;
	if (int64_t{y} < r.y || int64_t{y} >= int64_t{r.y} + r.h || r.w <= 0) return;
	const int64_t x0 = std::max<int64_t>(0, r.x), x1 = std::min<int64_t>(out.width, int64_t{r.x} + r.w);
	if (x1 <= x0) return;
	const uint32_t ty = uint32_t((int64_t{y} - r.y) * cur.image.height / r.h);
	const bool swap = rgb_order(out.layout);
	uint8_t *row = out.data + uint64_t{y} * out.stride;
	for (int64_t x = x0; x < x1; x++) {
		const uint32_t tx = uint32_t((x - r.x) * cur.image.width / r.w);
		int c[4] = {0, 0, 0, 255};
		cursor_texel(cur.image, tx, ty, c);
		uint8_t *o = row + x * 4;
		const int under[3] = {swap ? o[0] : o[2], o[1], swap ? o[2] : o[0]}; // R G B
		int res[3];
		for (int i = 0; i < 3; i++) res[i] = std::min(255, c[i] + div255((255 - c[3]) * under[i]));
		o[0] = uint8_t(swap ? res[0] : res[2]);
		o[1] = uint8_t(res[1]);
		o[2] = uint8_t(swap ? res[2] : res[0]);
		o[3] = 0xFF;
	}
}

} // namespace

CpuComposer::CpuComposer(CpuKernel kernel) {
#ifdef VSCANOUT_X86
	avx2_ = kernel == CpuKernel::best && __builtin_cpu_supports("avx2");
#else
	(void)kernel;
#endif
}

const int16_t *CpuComposer::horizontal_row(const CpuImage &src, uint32_t row, uint32_t keep) {
	for (int s = 0; s < 2; s++)
		if (row_tag_[s] == row) return rows_[s].data();
	const int s = row_tag_[0] == int64_t{keep} ? 1 : 0;
	row_tag_[s] = row;
	const uint8_t *p = src.data + uint64_t{row} * src.stride;
	// 32-bit B G R X rows are read in place; anything else, and one-pixel rows, through a copy.
	const bool direct = (src.layout == PixelLayout::xrgb8888 || src.layout == PixelLayout::argb8888) && src.width >= 2;
	if (!direct) {
		convert_row(p, src.width, src.layout, convert_.data());
		p = convert_.data();
	}
	int16_t *dst = rows_[s].data();
#ifdef VSCANOUT_X86
	if (avx2_) {
		hscale_avx2(p, cols_.index.data(), cols_.weights.data(), cols_.perm.data(), dst, cols_.dst_w);
		return dst;
	}
#endif
	hscale_scalar(p, cols_.index.data(), cols_.weights.data(), dst, 0, cols_.dst_w);
	return dst;
}

void CpuComposer::compose(const CpuImage &src, const Rect &place, const CpuCursor *cursor, const CpuImage &out,
                          bool keep_bars) {
	const uint32_t W = out.width, H = out.height;
	// The picture's rectangle, clipped to the output (place_frame keeps it inside).
	const int64_t px0 = std::clamp<int64_t>(place.x, 0, W), px1 = std::clamp<int64_t>(int64_t{place.x} + place.w, 0, W);
	const int64_t py0 = std::clamp<int64_t>(place.y, 0, H), py1 = std::clamp<int64_t>(int64_t{place.y} + place.h, 0, H);
	const bool picture = src.data && src.width && src.height && px1 > px0 && py1 > py0;

	if (picture && (cols_.src_w != src.width || cols_.dst_w != uint32_t(place.w))) {
		cols_.src_w = src.width;
		cols_.dst_w = uint32_t(place.w);
		// Padded for the kernels' prefetch reads past the end.
		cols_.index.assign(uint64_t{cols_.dst_w} + kPrefetchAhead, 0);
		cols_.weights.assign(uint64_t{cols_.dst_w} * 4, 0);
		for (uint32_t q = 0; q < cols_.dst_w; q++) {
			int64_t t0;
			double f;
			taps(q, src.width, cols_.dst_w, &t0, &f);
			int w = static_cast<int>(std::lround(f * kOne));
			if (w >= kOne) {
				t0++;
				w = 0;
			}
			// Reads pixels i and i + 1: at the edges, the pair inside the row with (nearly: 32767
			// of 32768, which rounds to the texel itself) all the weight on the clamped texel.
			const int64_t last = int64_t{src.width} - 1;
			int64_t i = t0;
			if (src.width < 2)
				i = 0, w = 0; // read through convert_, which repeats the pixel
			else if (t0 < 0)
				i = 0, w = 0;
			else if (t0 >= last)
				i = last - 1, w = kOne - 1;
			cols_.index[q] = uint32_t(i);
			for (int c = 0; c < 4; c++) cols_.weights[uint64_t{q} * 4 + c] = int16_t(w);
		}
		for (uint32_t q = cols_.dst_w; q < cols_.index.size(); q++) cols_.index[q] = cols_.index[cols_.dst_w - 1];
		// Groups whose pairs lie within the eight pixels from the first one's, inside the row: the
		// positions of their first pixels then their second ones among them, for the AVX2 kernel;
		// ~0 where the group is read pixel by pixel.
		cols_.perm.assign(uint64_t{cols_.dst_w} * 2 + 8, ~0u);
		for (uint32_t q = 0; q + 4 <= cols_.dst_w; q += 4) {
			const uint32_t base = cols_.index[q];
			if (cols_.index[q + 3] + 1 - base >= 8 || uint64_t{base} + 8 > src.width) continue;
			for (int k = 0; k < 4; k++) {
				cols_.perm[q * 2 + k] = cols_.index[q + k] - base;
				cols_.perm[q * 2 + 4 + k] = cols_.index[q + k] - base + 1;
			}
		}
		for (auto &r : rows_) r.assign(uint64_t{cols_.dst_w} * 4 + 32, 0);
	}
	if (picture) convert_.resize((uint64_t{src.width} + 1) * 4);
	row_tag_[0] = row_tag_[1] = -1; // new frame content

	const bool swap = rgb_order(out.layout);
	// Outputs far larger than a CPU's caches are written around them.
	const bool stream = uint64_t{out.stride} * H > kStreamBytes;
	auto fill_black = [this](uint32_t *p, uint64_t count) {
#ifdef VSCANOUT_X86
		if (avx2_) return fill_black_avx2(p, count);
#endif
		std::fill_n(p, count, kOpaqueBlack);
	};
	for (uint32_t y = 0; y < H; y++) {
		uint32_t *row = reinterpret_cast<uint32_t *>(out.data + uint64_t{y} * out.stride);
		if (!picture || y < py0 || y >= py1) {
			if (!keep_bars || !picture) fill_black(row, W);
		} else {
			if (!keep_bars) {
				fill_black(row, uint64_t(px0));
				fill_black(row + px1, uint64_t(W - px1));
			}
			const RowTaps t = row_taps(uint32_t(y - place.y), src.height, uint32_t(place.h));
			const int16_t *h0 = horizontal_row(src, t.r0, t.r1);
			const int16_t *h1 = horizontal_row(src, t.r1, t.r0);
			// Columns of the picture that are inside the output.
			const uint32_t c0 = uint32_t(px0 - place.x), c1 = uint32_t(px1 - place.x);
			uint8_t *o = reinterpret_cast<uint8_t *>(row + px0) - uint64_t{c0} * 4;
#ifdef VSCANOUT_X86
			if (avx2_ && c0 == 0)
				vblend_avx2(h0, h1, t.v, o, c1, swap, stream);
			else
#endif
				vblend_scalar(h0, h1, t.v, o, c0, c1, swap);
		}
		if (cursor) blend_cursor_row(*cursor, out, y);
	}
}

void CpuComposer::blend_cursor(const CpuCursor &cursor, const CpuImage &out) {
	const int64_t y0 = std::max<int64_t>(0, cursor.rect.y);
	const int64_t y1 = std::min<int64_t>(out.height, int64_t{cursor.rect.y} + cursor.rect.h);
	for (int64_t y = y0; y < y1; y++) blend_cursor_row(cursor, out, uint32_t(y));
}

} // namespace vscanout::render
