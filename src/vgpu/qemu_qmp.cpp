#include "vgpu/qemu_qmp.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

namespace vscanout::vgpu {

QmpLine classify_qmp_line(std::string_view line, uint64_t want_id) {
	using Kind = QmpLine::Kind;
	const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
	if (j.is_discarded()) return {Kind::malformed, "not JSON"};
	if (!j.is_object()) return {Kind::malformed, "not a JSON object"};
	if (j.contains("QMP") && j["QMP"].is_object()) return {Kind::greeting, {}};
	if (j.contains("event")) return {Kind::event, {}};
	const auto id = j.find("id");
	if (want_id == 0 || id == j.end() || !id->is_number_unsigned() || id->get<uint64_t>() != want_id)
		return {Kind::other_reply, {}};
	if (j.contains("return")) return {Kind::reply_ok, {}};
	if (const auto e = j.find("error"); e != j.end() && e->is_object()) {
		const auto desc = e->find("desc");
		return {Kind::reply_error, desc != e->end() && desc->is_string() ? desc->get<std::string>() : e->dump()};
	}
	return {Kind::malformed, "a reply with neither \"return\" nor \"error\""};
}

Result<bool> QmpLineReader::next(std::string &line) {
	const size_t nl = buf_.find('\n', scanned_);
	const size_t end = nl == std::string::npos ? buf_.size() : nl;
	if (end - start_ > max_line_) return fail("a line longer than " + std::to_string(max_line_) + " bytes");
	if (nl == std::string::npos) {
		scanned_ = buf_.size();
		return false;
	}
	line.assign(buf_, start_, nl - start_);
	start_ = scanned_ = nl + 1;
	// What was read goes once it is most of the buffer: each byte is moved at most once more.
	if (start_ >= buf_.size() / 2) {
		buf_.erase(0, start_);
		scanned_ -= start_;
		start_ = 0;
	}
	if (!line.empty() && line.back() == '\r') line.pop_back();
	return true;
}

QmpHandshake::QmpHandshake(SendFn send, size_t max_line) : send_(std::move(send)), reader_(max_line) {}

QmpHandshake::Progress QmpHandshake::progress() const {
	return state_ == State::done ? Progress::done : state_ == State::failed ? Progress::failed : Progress::pending;
}

QmpHandshake::Progress QmpHandshake::failed(std::string why) {
	state_ = State::failed;
	error_ = std::move(why);
	return Progress::failed;
}

Status QmpHandshake::send(const std::string &command, bool pass_fd) {
	const uint64_t id = next_id_++;
	want_id_ = id;
	// command is one JSON object: the id goes in before its closing brace.
	return send_(command.substr(0, command.rfind('}')) + ", \"id\": " + std::to_string(id) + "}\n", pass_fd);
}

QmpHandshake::Progress QmpHandshake::on_line(const std::string &line) {
	using Kind = QmpLine::Kind;
	const QmpLine l = classify_qmp_line(line, want_id_);
	if (l.kind == Kind::event) return Progress::pending;
	if (state_ == State::greeting) {
		if (l.kind != Kind::greeting) return failed("no QMP greeting (is it QEMU's QMP socket?)");
		if (Status s = send("{\"execute\": \"qmp_capabilities\"}"); !s) return failed(s.error());
		state_ = State::capabilities;
		return Progress::pending;
	}
	if (l.kind == Kind::other_reply || l.kind == Kind::greeting) return Progress::pending;
	const char *what = state_ == State::capabilities ? "qmp_capabilities"
	                   : state_ == State::getfd      ? "getfd"
	                                                 : "add_client (is QEMU's display -display dbus,p2p=yes?)";
	if (l.kind == Kind::malformed) return failed(std::string(what) + ": " + l.text);
	if (l.kind == Kind::reply_error) return failed(std::string(what) + ": " + l.text);
	switch (state_) {
	case State::capabilities:
		if (Status s = send("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"vscanout\"}}", true); !s)
			return failed(s.error());
		state_ = State::getfd;
		return Progress::pending;
	case State::getfd:
		if (Status s = send("{\"execute\": \"add_client\", \"arguments\": {\"protocol\": \"@dbus-display\", "
		                    "\"fdname\": \"vscanout\"}}");
		    !s)
			return failed(s.error());
		state_ = State::add_client;
		return Progress::pending;
	case State::add_client: state_ = State::done; return Progress::done;
	default: return failed("an answer out of turn");
	}
}

QmpHandshake::Progress QmpHandshake::feed(const char *data, size_t n) {
	if (state_ == State::done || state_ == State::failed) return progress();
	reader_.feed(data, n);
	std::string line;
	for (;;) {
		auto got = reader_.next(line);
		if (!got) return failed(got.error());
		if (!*got) return Progress::pending;
		const Progress p = on_line(line);
		if (p != Progress::pending) return p;
	}
}

QmpHandshake::Progress QmpHandshake::closed() {
	if (state_ == State::done || state_ == State::failed) return progress();
	return failed("QEMU closed the connection");
}

QmpDisplayRequest::QmpDisplayRequest()
    : handshake_([this](const std::string &line, bool pass_fd) { return send_line(line, pass_fd); }) {}

Result<std::unique_ptr<QmpDisplayRequest>> QmpDisplayRequest::start(const std::string &path) {
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof addr.sun_path) return fail("QMP socket path too long: " + path);
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	std::unique_ptr<QmpDisplayRequest> r(new QmpDisplayRequest);
	r->path_ = path;
	r->qmp_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!r->qmp_) return fail(std::string("QMP: socket: ") + std::strerror(errno));
	if (::connect(r->qmp_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0) {
		r->connecting_ = false;
	} else if (errno != EINPROGRESS) {
		// EAGAIN: it listens, but its backlog is full (QEMU serves one QMP client at a time).
		return fail("QMP: cannot connect to " + path + ": " +
		            (errno == EAGAIN ? std::string("it accepts no connection now") : std::strerror(errno)));
	}
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return fail(std::string("socketpair: ") + std::strerror(errno));
	r->ours_ = UniqueFd(sv[0]);
	r->theirs_ = UniqueFd(sv[1]);
	return r;
}

QmpDisplayRequest::Progress QmpDisplayRequest::failed(std::string why) {
	error_ = "QMP " + path_ + ": " + why;
	over_ = Progress::failed; // the socket stays open: the caller stops watching it first
	return Progress::failed;
}

QmpDisplayRequest::Progress QmpDisplayRequest::result(QmpHandshake::Progress p) {
	switch (p) {
	case QmpHandshake::Progress::pending: return Progress::pending;
	case QmpHandshake::Progress::failed: return failed(handshake_.error());
	case QmpHandshake::Progress::done:
		qmp_.reset(); // QEMU's monitor is free for its next client
		over_ = Progress::done;
		return Progress::done;
	}
	return Progress::pending;
}

Status QmpDisplayRequest::send_line(const std::string &line, bool pass_fd) {
	if (pass_fd && !theirs_) return fail("getfd asked for twice");
	msghdr msg{};
	iovec iov{const_cast<char *>(line.data()), line.size()};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	if (pass_fd) {
		const int fd = theirs_.get();
		msg.msg_control = control;
		msg.msg_controllen = sizeof control;
		cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	// A few hundred bytes into an empty socket buffer: all of it goes, or the peer is broken.
	if (::sendmsg(qmp_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(line.size()))
		return fail(std::string("cannot send: ") + (errno == EAGAIN ? "QEMU reads nothing" : std::strerror(errno)));
	if (pass_fd) theirs_.reset(); // QEMU has its copy now
	return Ok{};
}

QmpDisplayRequest::Progress QmpDisplayRequest::advance() {
	if (over_) return *over_;
	if (connecting_) {
		pollfd p{qmp_.get(), POLLOUT, 0};
		if (::poll(&p, 1, 0) == 0) return Progress::pending; // not connected yet
		int err = 0;
		socklen_t len = sizeof err;
		if (::getsockopt(qmp_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
		if (err == EINPROGRESS || err == EAGAIN) return Progress::pending;
		if (err) return failed(std::string("cannot connect: ") + std::strerror(err));
		connecting_ = false;
	}
	// A bounded amount each time: a peer that floods us cannot keep the event loop busy (the
	// loop comes back while more is there).
	for (int chunks = 0; chunks < 16; chunks++) {
		char chunk[4096];
		const ssize_t n = ::recv(qmp_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Progress::pending;
		if (n < 0) return failed(std::string("cannot read: ") + std::strerror(errno));
		if (n == 0) return result(handshake_.closed());
		const auto p = handshake_.feed(chunk, static_cast<size_t>(n));
		if (p != QmpHandshake::Progress::pending) return result(p);
	}
	return Progress::pending;
}

} // namespace vscanout::vgpu
