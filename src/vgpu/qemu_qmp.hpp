// QEMU's peer-to-peer D-Bus display (`-display dbus,p2p=yes`): there is no bus; a client asks
// for a connection over QMP, handing QEMU one end of a socketpair (`getfd` with SCM_RIGHTS, then
// `add_client` with protocol `@dbus-display`). QEMU then serves its display objects on it.
//
// The exchange runs on the caller's event loop and never blocks: the connect is non-blocking
// (a QMP socket whose backlog is full, because QEMU serves another client, fails at once), the
// greeting and each reply are read as they arrive, and the caller bounds the whole exchange with
// a timer of its own. Replies are JSON (nlohmann-json), matched to their command by id.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace vscanout::vgpu {

// What one line from QMP is to a client that waits for the reply with id `want_id` (0: for the
// greeting).
struct QmpLine {
	enum class Kind {
		greeting,    // {"QMP": {...}}
		event,       // {"event": ...}: skipped
		reply_ok,    // {"return": ..., "id": want_id}
		reply_error, // {"error": {"desc": ...}, "id": want_id}; text: the description
		other_reply, // a reply to something else (another id, or none): skipped
		malformed,   // not a JSON object, or a reply that is neither return nor error; text: why
	};
	Kind kind = Kind::malformed;
	std::string text;
};
QmpLine classify_qmp_line(std::string_view line, uint64_t want_id);

// Lines from a byte stream, each at most max_line bytes (a longer one is an error).
class QmpLineReader {
public:
	explicit QmpLineReader(size_t max_line = 64 * 1024) : max_line_(max_line) {}
	// Takes more bytes; fails once a line grows past the limit.
	Status feed(const char *data, size_t n);
	// The next complete line (without its newline), if any.
	bool next(std::string &line);

private:
	size_t max_line_;
	std::string buf_;
};

// One request for a D-Bus display connection, from connect() to add_client's reply.
class QmpDisplayRequest {
public:
	enum class Progress { pending, done, failed };

	// Starts the non-blocking connect; fails at once when nothing listens at `path` or its
	// backlog is full.
	static Result<std::unique_ptr<QmpDisplayRequest>> start(const std::string &path);

	int fd() const { return qmp_.get(); }
	// Whether the loop should wait for the socket to be writable (a connect in progress) rather
	// than readable.
	bool wants_write() const { return state_ == State::connecting; }
	// Does what can be done now without blocking. done: take_connection() has our end.
	Progress advance();
	const std::string &error() const { return error_; }
	UniqueFd take_connection() { return std::move(ours_); }

private:
	enum class State { connecting, greeting, capabilities, getfd, add_client, done, failed };
	QmpDisplayRequest() = default;
	Progress failed(std::string why);
	Status send(uint64_t id, const std::string &command, int pass_fd = -1);
	Progress on_line(const std::string &line);

	std::string path_;
	UniqueFd qmp_, ours_, theirs_;
	QmpLineReader reader_;
	State state_ = State::connecting;
	uint64_t next_id_ = 1, want_id_ = 0;
	std::string error_;
};

} // namespace vscanout::vgpu
