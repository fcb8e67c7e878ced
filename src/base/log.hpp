// Logging for the layers that must not include wlroots (vgpu, core, render).
// main() routes this sink into wlr_log so -d and WLR_DEBUG-style verbosity apply everywhere.
#pragma once

#include <cstdarg>

namespace vscanout::log {

enum class Level { error = 1, info = 2, debug = 3 };

using Sink = void (*)(Level, const char *fmt, va_list);

void set_sink(Sink sink);
void set_level(Level level); // used by the default stderr sink only
[[gnu::format(printf, 2, 3)]] void write(Level level, const char *fmt, ...);

} // namespace vscanout::log

#define VLOG_ERROR(...) ::vscanout::log::write(::vscanout::log::Level::error, __VA_ARGS__)
#define VLOG_INFO(...) ::vscanout::log::write(::vscanout::log::Level::info, __VA_ARGS__)
#define VLOG_DEBUG(...) ::vscanout::log::write(::vscanout::log::Level::debug, __VA_ARGS__)
