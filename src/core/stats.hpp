// Per-head counters, written by --stats as one JSON object per line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vscanout::core {

struct HeadStats {
	uint32_t head = 0;
	uint64_t generation = 0;
	uint64_t imports = 0;
	uint64_t cache_hits = 0;
	uint64_t evictions = 0;
	uint64_t renders = 0;
	uint64_t commits = 0;
	uint64_t scanouts = 0; // commits of the guest buffer itself (KMS direct scan-out)
	uint64_t rejected = 0;
	uint64_t buffer_opens = 0;  // GET_GFX_DMABUF-style calls
	uint64_t copies = 0;        // frames that took the counted-copy import path
	uint64_t copy_bytes = 0;    // bytes those copies moved (only the damaged rows, where the source tells them)
	uint64_t cursor_images = 0; // cursor image updates
	uint64_t cursor_moves = 0;
	uint64_t query_errors = 0;
	uint64_t fence_waits = 0;    // new frames held back for their buffer's write fences
	uint64_t fence_timeouts = 0; // waits that went past --fence-timeout (logged)
	uint32_t width = 0, height = 0;
	std::string import_path; // the primary's last import: "dmabuf", "host", "copy" or ""
	std::string output_path; // how the last frame was written: "dmabuf", "host", "staged" or ""
	std::string cursor_path; // "hardware", "software" or ""
	bool connected = true;
};

std::string to_json_line(const HeadStats &s);

// Writes every line to path through a temporary file and rename, so readers never see half.
bool write_stats_file(const std::string &path, const std::vector<HeadStats> &heads);

} // namespace vscanout::core
