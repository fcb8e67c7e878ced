// The QMP side of the QEMU source without a socket (vgpu/qemu_qmp.hpp): the line reader's bound
// and the handshake on byte streams split anywhere. (fuzz/qmp_fuzz.cpp fuzzes the same classes.)
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "vgpu/qemu_qmp.hpp"

namespace vscanout::vgpu {
namespace {

// A line longer than the limit is an error wherever it is: complete and in the middle of one
// chunk, or trickled in a byte at a time (each byte looked at once).
TEST(QmpLines, LongLinesFailHoweverTheyArrive) {
	QmpLineReader whole(16);
	std::string line;
	const std::string text = "short\n" + std::string(17, 'x') + "\nafter\n";
	whole.feed(text.data(), text.size());
	ASSERT_TRUE(*whole.next(line));
	EXPECT_EQ(line, "short");
	EXPECT_FALSE(whole.next(line).ok()) << "a complete 17-byte line passed a 16-byte limit";
	QmpLineReader exact(16);
	const std::string sixteen = std::string(16, 'y') + "\n";
	exact.feed(sixteen.data(), sixteen.size());
	ASSERT_TRUE(exact.next(line).ok());
	EXPECT_EQ(line, std::string(16, 'y'));
	QmpLineReader trickle(64 * 1024);
	size_t fed = 0;
	for (; fed <= 64 * 1024; fed++) {
		trickle.feed("z", 1);
		auto got = trickle.next(line);
		if (!got.ok()) break;
		ASSERT_FALSE(*got);
	}
	EXPECT_EQ(fed, 64u * 1024) << "the limit fired at the wrong byte";
}

// The handshake without a socket: the greeting, three commands answered by id, events and
// other replies skipped; the same result however the stream is split.
struct SentLine {
	std::string line;
	bool pass_fd;
	bool operator==(const SentLine &) const = default;
};

struct HandshakeRun {
	std::vector<SentLine> sent;
	QmpHandshake::Progress progress = QmpHandshake::Progress::pending;
	std::string error;
};

HandshakeRun run_handshake(const std::string &stream, size_t chunk, int fail_send = 0) {
	HandshakeRun run;
	QmpHandshake h([&](const std::string &line, bool pass_fd) -> Status {
		run.sent.push_back({line, pass_fd});
		if (static_cast<int>(run.sent.size()) == fail_send) return fail("cannot send: test");
		return Ok{};
	});
	for (size_t at = 0; at < stream.size() && run.progress == QmpHandshake::Progress::pending; at += chunk)
		run.progress = h.feed(stream.data() + at, std::min(chunk, stream.size() - at));
	run.error = h.error();
	return run;
}

TEST(QmpHandshake, GreetingThenThreeCommandsMatchedById) {
	const std::string stream = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 8}}, \"capabilities\": [\"oob\"]}}\r\n"
	                           "{\"return\": {}, \"id\": 1}\r\n"
	                           "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n"
	                           "{\"return\": {}, \"id\": 7}\r\n"
	                           "{\"return\": {}, \"id\": 2}\r\n"
	                           "{\"return\": {}, \"id\": 3}\r\n";
	for (size_t chunk : {stream.size(), size_t{1}, size_t{7}, size_t{64}}) {
		const HandshakeRun r = run_handshake(stream, chunk);
		EXPECT_EQ(r.progress, QmpHandshake::Progress::done) << "chunk " << chunk << ": " << r.error;
		ASSERT_EQ(r.sent.size(), 3u);
		EXPECT_EQ(r.sent[0].line, "{\"execute\": \"qmp_capabilities\", \"id\": 1}\n");
		EXPECT_FALSE(r.sent[0].pass_fd);
		EXPECT_NE(r.sent[1].line.find("\"getfd\""), std::string::npos);
		EXPECT_NE(r.sent[1].line.find("\"id\": 2}"), std::string::npos);
		EXPECT_TRUE(r.sent[1].pass_fd);
		EXPECT_NE(r.sent[2].line.find("\"add_client\""), std::string::npos);
		EXPECT_FALSE(r.sent[2].pass_fd);
	}
}

TEST(QmpHandshake, FailuresNameTheirStep) {
	const std::string greeting = "{\"QMP\": {}}\n";
	auto r = run_handshake("{\"return\": {}}\n", 1);
	EXPECT_EQ(r.progress, QmpHandshake::Progress::failed);
	EXPECT_NE(r.error.find("no QMP greeting"), std::string::npos) << r.error;
	r = run_handshake(greeting + "{\"error\": {\"desc\": \"nope\"}, \"id\": 1}\n", 5);
	EXPECT_EQ(r.progress, QmpHandshake::Progress::failed);
	EXPECT_EQ(r.error, "qmp_capabilities: nope");
	r = run_handshake(greeting + "{\"return\": {}, \"id\": 1}\n{\"id\": 2}\n", 3);
	EXPECT_EQ(r.error, "getfd: a reply with neither \"return\" nor \"error\"");
	// A send that fails ends it there; nothing after that is read.
	r = run_handshake(greeting + "{\"return\": {}, \"id\": 1}\n", 100, 2);
	EXPECT_EQ(r.progress, QmpHandshake::Progress::failed);
	EXPECT_EQ(r.error, "cannot send: test");
	EXPECT_EQ(r.sent.size(), 2u);
	// Done is done: more bytes, or the connection closing, change nothing.
	QmpHandshake h([](const std::string &, bool) -> Status { return Ok{}; });
	const std::string all =
	    greeting + "{\"return\": {}, \"id\": 1}\n{\"return\": {}, \"id\": 2}\n{\"return\": 1, \"id\": 3}\n";
	ASSERT_EQ(h.feed(all.data(), all.size()), QmpHandshake::Progress::done);
	EXPECT_EQ(h.feed("garbage\n", 8), QmpHandshake::Progress::done);
	EXPECT_EQ(h.closed(), QmpHandshake::Progress::done);
	QmpHandshake early([](const std::string &, bool) -> Status { return Ok{}; });
	EXPECT_EQ(early.closed(), QmpHandshake::Progress::failed);
	EXPECT_EQ(early.error(), "QEMU closed the connection");
}

} // namespace
} // namespace vscanout::vgpu
