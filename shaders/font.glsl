// A 5x7 bitmap font holding just the glyphs of "NO SIGNAL". Each glyph row is 5 bits, bit 4 the
// leftmost column. Rows, top to bottom:
//   N 11 19 15 13 11 11 11   O 0E 11 11 11 11 11 0E   S 0F 10 10 0E 01 01 1E   I 0E 04 04 04 04 04 0E
//   G 0E 11 10 17 11 11 0F   A 0E 11 11 1F 11 11 11   L 10 10 10 10 10 10 1F
// Rows 0-4 pack into one uint (6 bits each); rows 5 and 6 come on their own.
// Switches instead of constant arrays: lavapipe copies a dynamically indexed constant array into
// every invocation's private memory, which made the no-signal frame 50x slower.

// Row bits of glyph g (0 N, 1 O, 2 S, 3 I, 4 G, 5 A, 6 L), row r.
uint glyph_row(uint g, uint r) {
	uint lo, hi; // rows 0..4 at bits 6r; row 6
	switch (g) {
	case 0u: lo = 0x11u | 0x19u << 6 | 0x15u << 12 | 0x13u << 18 | 0x11u << 24; hi = 0x11u; break; // N
	case 1u: lo = 0x0Eu | 0x11u << 6 | 0x11u << 12 | 0x11u << 18 | 0x11u << 24; hi = 0x0Eu; break; // O
	case 2u: lo = 0x0Fu | 0x10u << 6 | 0x10u << 12 | 0x0Eu << 18 | 0x01u << 24; hi = 0x1Eu; break; // S
	case 3u: lo = 0x0Eu | 0x04u << 6 | 0x04u << 12 | 0x04u << 18 | 0x04u << 24; hi = 0x0Eu; break; // I
	case 4u: lo = 0x0Eu | 0x11u << 6 | 0x10u << 12 | 0x17u << 18 | 0x11u << 24; hi = 0x0Fu; break; // G
	case 5u: lo = 0x0Eu | 0x11u << 6 | 0x11u << 12 | 0x1Fu << 18 | 0x11u << 24; hi = 0x11u; break; // A
	default: lo = 0x10u | 0x10u << 6 | 0x10u << 12 | 0x10u << 18 | 0x10u << 24; hi = 0x1Fu; break; // L
	}
	if (r < 5u) return (lo >> (6u * r)) & 0x1Fu;
	if (r == 6u) return hi;
	switch (g) {
	case 0u: return 0x11u;
	case 1u: return 0x11u;
	case 2u: return 0x01u;
	case 3u: return 0x04u;
	case 4u: return 0x11u;
	case 5u: return 0x11u;
	default: return 0x10u;
	}
}

// "NO SIGNAL": the glyph of character c, or 7 for the blank.
uint text_glyph(int c) {
	switch (c) {
	case 0: return 0u; // N
	case 1: return 1u; // O
	case 2: return 7u; // ' '
	case 3: return 2u; // S
	case 4: return 3u; // I
	case 5: return 4u; // G
	case 6: return 0u; // N
	case 7: return 5u; // A
	default: return 6u; // L
	}
}

// True where the text "NO SIGNAL" covers pixel p. Cells are 6 columns wide (5 + 1 gap); the text
// is 53 columns by 7 rows at scale s from origin. The caller computes, once per frame:
//   s = max(1, min(width / 108, height / 28)), origin = ((width - 53 s) / 2, (height - 7 s) / 2).
bool no_signal_text(ivec2 p, ivec2 origin, int s) {
	ivec2 q = p - origin;
	if (q.x < 0 || q.y < 0 || q.x >= 53 * s || q.y >= 7 * s) return false;
	ivec2 cell = q / s;
	int col = cell.x % 6;
	uint g = text_glyph(cell.x / 6);
	if (col == 5 || g == 7u) return false;
	return ((glyph_row(g, uint(cell.y)) >> uint(4 - col)) & 1u) != 0u;
}
