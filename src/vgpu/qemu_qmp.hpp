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
#include <functional>
#include <memory>
#include <optional>
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

// Lines from a byte stream, each at most max_line bytes (a longer one is an error, found where
// it starts however the stream was split). Each byte is looked at once, however it arrives.
class QmpLineReader {
public:
	explicit QmpLineReader(size_t max_line = 64 * 1024) : max_line_(max_line) {}
	// Takes more bytes; they wait until next() reads their lines.
	void feed(const char *data, size_t n) { buf_.append(data, n); }
	// The next complete line (without its newline, or a CR before that): true; false while it is
	// not complete. Fails when the next line, complete or not, is longer than max_line.
	Result<bool> next(std::string &line);

private:
	size_t max_line_;
	std::string buf_;
	size_t start_ = 0;   // where the next line starts in buf_
	size_t scanned_ = 0; // buf_[start_, scanned_) holds no newline
};

// The QMP side of asking for a D-Bus display connection, without the socket: bytes as they
// arrive in, commands to send out (through `send`, which the caller backs with the socket). Pure,
// so every byte stream a QEMU can send is unit-tested and fuzzed against it (fuzz/qmp_fuzz.cpp).
// The exchange: the greeting, then qmp_capabilities, getfd (which carries our fd), add_client,
// each answered by the reply with its id; events and replies to other ids are skipped.
class QmpHandshake {
public:
	enum class Progress { pending, done, failed };
	// Sends one command line (a JSON object and a newline); pass_fd: with the socketpair end QEMU
	// keeps (getfd). A failure fails the handshake with its text.
	using SendFn = std::function<Status(const std::string &line, bool pass_fd)>;

	explicit QmpHandshake(SendFn send, size_t max_line = 64 * 1024);
	// Takes bytes read from QMP and acts on every complete line in them, in order. Once done or
	// failed, it takes nothing more (later bytes are not looked at).
	Progress feed(const char *data, size_t n);
	// QEMU closed the connection (a read of 0 bytes).
	Progress closed();
	Progress progress() const;
	const std::string &error() const { return error_; }

private:
	enum class State { greeting, capabilities, getfd, add_client, done, failed };
	Progress failed(std::string why);
	Status send(const std::string &command, bool pass_fd = false);
	Progress on_line(const std::string &line);

	SendFn send_;
	QmpLineReader reader_;
	State state_ = State::greeting;
	uint64_t next_id_ = 1, want_id_ = 0;
	std::string error_;
};

// One request for a D-Bus display connection, from connect() to add_client's reply: a
// QmpHandshake on a non-blocking QMP socket.
class QmpDisplayRequest {
public:
	enum class Progress { pending, done, failed };

	// Starts the non-blocking connect; fails at once when nothing listens at `path` or its
	// backlog is full.
	static Result<std::unique_ptr<QmpDisplayRequest>> start(const std::string &path);

	int fd() const { return qmp_.get(); }
	// Whether the loop should wait for the socket to be writable (a connect in progress) rather
	// than readable.
	bool wants_write() const { return connecting_; }
	// Does what can be done now without blocking. done: take_connection() has our end.
	Progress advance();
	const std::string &error() const { return error_; }
	UniqueFd take_connection() { return std::move(ours_); }

private:
	QmpDisplayRequest();
	Progress failed(std::string why);
	Progress result(QmpHandshake::Progress p);
	Status send_line(const std::string &line, bool pass_fd);

	std::string path_;
	UniqueFd qmp_, ours_, theirs_;
	bool connecting_ = true;
	std::optional<Progress> over_; // done or failed: advance() answers this from then on
	QmpHandshake handshake_;
	std::string error_;
};

} // namespace vscanout::vgpu
