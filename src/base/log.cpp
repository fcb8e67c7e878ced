#include "base/log.hpp"

#include <algorithm>
#include <cstdio>

namespace vscanout::log {
namespace {

Level g_level = Level::info;

void stderr_sink(Level level, const char *fmt, va_list args) {
	if (level > g_level) return;
	static const char *const names[] = {"", "ERROR", "INFO", "DEBUG"};
	std::fprintf(stderr, "[vscanout %s] ", names[static_cast<int>(level)]);
	std::vfprintf(stderr, fmt, args);
	std::fputc('\n', stderr);
}

Sink g_sink = stderr_sink;

} // namespace

namespace {

// Length of the well-formed UTF-8 sequence at text[i] and its code point; 0 when malformed.
size_t utf8_sequence(std::string_view text, size_t i, uint32_t &cp) {
	const auto b0 = static_cast<unsigned char>(text[i]);
	size_t n = b0 < 0x80 ? 1 : (b0 & 0xe0) == 0xc0 ? 2 : (b0 & 0xf0) == 0xe0 ? 3 : (b0 & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || i + n > text.size()) return 0;
	cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1fu) : n == 3 ? (b0 & 0x0fu) : (b0 & 0x07u);
	for (size_t k = 1; k < n; k++) {
		const auto b = static_cast<unsigned char>(text[i + k]);
		if ((b & 0xc0) != 0x80) return 0;
		cp = (cp << 6) | (b & 0x3fu);
	}
	static const uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0; // overlong, surrogate
	return n;
}

} // namespace

std::string escape(std::string_view text, size_t max_bytes) {
	std::string out;
	out.reserve(std::min(text.size(), max_bytes) + 8);
	auto hex = [&](unsigned char c) {
		static const char digits[] = "0123456789abcdef";
		out += "\\x";
		out += digits[c >> 4];
		out += digits[c & 15];
	};
	for (size_t i = 0; i < text.size();) {
		if (out.size() >= max_bytes) {
			out += "...";
			break;
		}
		uint32_t cp = 0;
		const size_t n = utf8_sequence(text, i, cp);
		// C0 controls, DEL, C1 controls (CSI is U+009B), the escape character itself, and every
		// byte of malformed UTF-8 (an 8-bit terminal may read a lone 0x9b as CSI) become \xNN.
		if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == '\\') {
			for (size_t k = 0; k < std::max<size_t>(n, 1); k++) hex(static_cast<unsigned char>(text[i + k]));
			i += std::max<size_t>(n, 1);
		} else {
			out.append(text.substr(i, n));
			i += n;
		}
	}
	return out;
}

bool RateLimit::allow(std::chrono::steady_clock::time_point now) {
	if (any_ && now - last_ < interval_) {
		pending_++;
		return false;
	}
	any_ = true;
	last_ = now;
	reported_ = pending_;
	pending_ = 0;
	return true;
}

void set_sink(Sink sink) { g_sink = sink ? sink : stderr_sink; }
void set_level(Level level) { g_level = level; }

void write(Level level, const char *fmt, ...) {
	va_list args;
	va_start(args, fmt);
	g_sink(level, fmt, args);
	va_end(args);
}

} // namespace vscanout::log
