// The QMP handshake of the QEMU source (vgpu/qemu_qmp.cpp: QmpHandshake, its line reader and
// classify_qmp_line) on arbitrary byte streams from a hostile QEMU, split at fuzzer-chosen points.
//
// Input: a split byte, a settings byte (which send fails, the line limit), then the stream. The
// stream is fed whole, in chunks the split byte chooses, and a byte at a time: every way must
// end the same (progress, error, the commands sent), and what is sent must be the handshake's
// three commands in order, numbered 1, 2, 3, with the fd on getfd only.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "vgpu/qemu_qmp.hpp"

namespace vscanout::fuzz {
namespace {

using vgpu::QmpHandshake;

struct Sent {
	std::string line;
	bool pass_fd;
	bool operator==(const Sent &) const = default;
};

struct Run {
	QmpHandshake::Progress progress = QmpHandshake::Progress::pending;
	std::string error;
	std::vector<Sent> sent;
	bool operator==(const Run &) const = default;
};

Run run(std::string_view stream, size_t max_line, unsigned fail_send, uint8_t split, bool bytewise) {
	Run r;
	QmpHandshake h(
	    [&](const std::string &line, bool pass_fd) -> Status {
		    r.sent.push_back({line, pass_fd});
		    if (r.sent.size() == fail_send) return fail("cannot send: fuzz");
		    return Ok{};
	    },
	    max_line);
	size_t at = 0;
	for (unsigned i = 0; at < stream.size() && r.progress == QmpHandshake::Progress::pending; i++) {
		size_t n = stream.size(); // whole
		if (bytewise)
			n = 1;
		else if (split)
			n = 1 + ((split ^ (i * 37u)) % 251u);
		n = std::min(n, stream.size() - at);
		r.progress = h.feed(stream.data() + at, n);
		at += n;
	}
	if (r.progress == QmpHandshake::Progress::pending && !stream.empty()) FUZZ_CHECK(at == stream.size());
	// After the end, more bytes and a close change nothing; a close before it fails.
	const auto closed = h.closed();
	FUZZ_CHECK(r.progress == QmpHandshake::Progress::pending ? closed == QmpHandshake::Progress::failed
	                                                         : closed == r.progress);
	FUZZ_CHECK(h.feed("{\"return\": {}, \"id\": 3}\n", 24) == closed);
	r.error = r.progress == QmpHandshake::Progress::failed ? h.error() : std::string();
	return r;
}

void check_sent(const Run &r) {
	static const char *const commands[] = {"\"qmp_capabilities\"", "\"getfd\"", "\"add_client\""};
	FUZZ_CHECK(r.sent.size() <= 3);
	for (size_t i = 0; i < r.sent.size(); i++) {
		const std::string &line = r.sent[i].line;
		FUZZ_CHECK(line.find(commands[i]) != std::string::npos);
		FUZZ_CHECK(line.size() > 2 && line.compare(line.size() - 2, 2, "}\n") == 0);
		FUZZ_CHECK(line.find("\"id\": " + std::to_string(i + 1) + "}") != std::string::npos);
		FUZZ_CHECK(r.sent[i].pass_fd == (i == 1));
	}
	if (r.progress == QmpHandshake::Progress::done) FUZZ_CHECK(r.sent.size() == 3);
	if (r.progress == QmpHandshake::Progress::failed) FUZZ_CHECK(!r.error.empty());
}

} // namespace
} // namespace vscanout::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace vscanout::fuzz;
	quiet_logs();
	if (size < 2) return 0;
	const uint8_t split = data[0], settings = data[1];
	const unsigned fail_send = settings & 3; // 0: every send works
	static const size_t limits[] = {64 * 1024, 1024, 256, 40};
	const size_t max_line = limits[(settings >> 2) & 3];
	const std::string_view stream(reinterpret_cast<const char *>(data) + 2, size - 2);

	const Run whole = run(stream, max_line, fail_send, 0, false);
	check_sent(whole);
	const Run chunked = run(stream, max_line, fail_send, split ? split : 1, false);
	FUZZ_CHECK(chunked == whole);
	if (stream.size() <= 16 * 1024) {
		const Run bytes = run(stream, max_line, fail_send, 0, true);
		FUZZ_CHECK(bytes == whole);
	}
	return 0;
}
