#include "core/stats.hpp"

#include <cinttypes>
#include <cstdio>

namespace vscanout::core {

std::string to_json_line(const HeadStats &s) {
	char buf[1024];
	std::snprintf(
	    buf, sizeof buf,
	    "{\"head\": %u, \"generation\": %" PRIu64 ", \"imports\": %" PRIu64 ", \"cache_hits\": %" PRIu64
	    ", \"evictions\": %" PRIu64 ", \"renders\": %" PRIu64 ", \"commits\": %" PRIu64 ", \"scanouts\": %" PRIu64
	    ", \"rejected\": %" PRIu64 ", \"buffer_opens\": %" PRIu64 ", \"copies\": %" PRIu64 ", \"copy_bytes\": %" PRIu64
	    ", \"cursor_images\": %" PRIu64 ", \"cursor_moves\": %" PRIu64 ", \"query_errors\": %" PRIu64
	    ", \"fence_waits\": %" PRIu64 ", \"fence_timeouts\": %" PRIu64
	    ", \"width\": %u, \"height\": %u, \"import_path\": \"%s\", \"output_path\": \"%s\", \"cursor_path\": \"%s\""
	    ", \"connected\": %s}",
	    s.head, s.generation, s.imports, s.cache_hits, s.evictions, s.renders, s.commits, s.scanouts, s.rejected,
	    s.buffer_opens, s.copies, s.copy_bytes, s.cursor_images, s.cursor_moves, s.query_errors, s.fence_waits,
	    s.fence_timeouts, s.width, s.height, s.import_path.c_str(), s.output_path.c_str(), s.cursor_path.c_str(),
	    s.connected ? "true" : "false");
	return buf;
}

bool write_stats_file(const std::string &path, const std::vector<HeadStats> &heads) {
	const std::string tmp = path + ".tmp";
	FILE *f = std::fopen(tmp.c_str(), "w");
	if (!f) return false;
	for (const auto &h : heads) std::fprintf(f, "%s\n", to_json_line(h).c_str());
	bool ok = std::fclose(f) == 0;
	return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace vscanout::core
