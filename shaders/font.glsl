// A 5x7 bitmap font holding just the glyphs of "NO SIGNAL". Each glyph is 7 rows, bit 4 is
// the leftmost column.
const uint kGlyphs[7 * 7] = uint[](
	0x11u, 0x19u, 0x15u, 0x13u, 0x11u, 0x11u, 0x11u, // N
	0x0Eu, 0x11u, 0x11u, 0x11u, 0x11u, 0x11u, 0x0Eu, // O
	0x0Fu, 0x10u, 0x10u, 0x0Eu, 0x01u, 0x01u, 0x1Eu, // S
	0x0Eu, 0x04u, 0x04u, 0x04u, 0x04u, 0x04u, 0x0Eu, // I
	0x0Eu, 0x11u, 0x10u, 0x17u, 0x11u, 0x11u, 0x0Fu, // G
	0x0Eu, 0x11u, 0x11u, 0x1Fu, 0x11u, 0x11u, 0x11u, // A
	0x10u, 0x10u, 0x10u, 0x10u, 0x10u, 0x10u, 0x1Fu  // L
);
// "NO SIGNAL": glyph index per character, 7 = blank.
const uint kText[9] = uint[](0u, 1u, 7u, 2u, 3u, 4u, 0u, 5u, 6u);

// True where the text "NO SIGNAL" covers pixel p of a frame of the given size.
// Cells are 6 columns wide (5 + 1 gap); the text is 53 columns by 7 rows, scaled by s and centred.
bool no_signal_text(ivec2 p, ivec2 size) {
	int s = max(1, min(size.x / 108, size.y / 28));
	ivec2 origin = ivec2((size.x - 53 * s) / 2, (size.y - 7 * s) / 2);
	ivec2 q = p - origin;
	if (q.x < 0 || q.y < 0) return false;
	ivec2 cell = q / s;
	if (cell.x >= 53 || cell.y >= 7) return false;
	int ch = cell.x / 6, col = cell.x % 6;
	uint g = kText[ch];
	if (col == 5 || g == 7u) return false;
	return ((kGlyphs[g * 7u + uint(cell.y)] >> uint(4 - col)) & 1u) != 0u;
}
