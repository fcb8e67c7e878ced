// Logging for the layers that must not include wlroots (vgpu, core, render).
// main() routes this sink into wlr_log so -d and WLR_DEBUG-style verbosity apply everywhere.
#pragma once

#include <cstdarg>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace vscanout::log {

enum class Level { error = 1, info = 2, debug = 3 };

using Sink = void (*)(Level, const char *fmt, va_list);

void set_sink(Sink sink);
void set_level(Level level); // used by the default stderr sink only
[[gnu::format(printf, 2, 3)]] void write(Level level, const char *fmt, ...);

// Text from another party (a VM's name, a console's label) made safe to log: control characters
// (C0, DEL, and C1 in UTF-8 or as single bytes) and backslashes become \xNN escapes, and text
// past max_bytes is cut with "...". Nothing it returns can move a terminal's cursor or recolour it.
std::string escape(std::string_view text, size_t max_bytes = 256);

// At most one message per interval for one cause; the next allowed one says how many were left
// out in between. allow() returns true when this one may be logged; suppressed() is the count
// left out since the last allowed one (read it right after allow() returned true).
class RateLimit {
public:
	explicit RateLimit(std::chrono::milliseconds interval = std::chrono::seconds(10)) : interval_(interval) {}
	bool allow(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
	uint64_t suppressed() const { return reported_; }

private:
	std::chrono::milliseconds interval_;
	std::chrono::steady_clock::time_point last_{};
	bool any_ = false;
	uint64_t pending_ = 0, reported_ = 0;
};

} // namespace vscanout::log

#define VLOG_ERROR(...) ::vscanout::log::write(::vscanout::log::Level::error, __VA_ARGS__)
#define VLOG_INFO(...) ::vscanout::log::write(::vscanout::log::Level::info, __VA_ARGS__)
#define VLOG_DEBUG(...) ::vscanout::log::write(::vscanout::log::Level::debug, __VA_ARGS__)
