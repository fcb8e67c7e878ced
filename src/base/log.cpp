#include "base/log.hpp"

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

void set_sink(Sink sink) { g_sink = sink ? sink : stderr_sink; }
void set_level(Level level) { g_level = level; }

void write(Level level, const char *fmt, ...) {
	va_list args;
	va_start(args, fmt);
	g_sink(level, fmt, args);
	va_end(args);
}

} // namespace vscanout::log
