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

Status QmpLineReader::feed(const char *data, size_t n) {
	buf_.append(data, n);
	const size_t nl = buf_.rfind('\n');
	const size_t tail = nl == std::string::npos ? buf_.size() : buf_.size() - nl - 1;
	if (tail > max_line_) return fail("a line longer than " + std::to_string(max_line_) + " bytes");
	return Ok{};
}

bool QmpLineReader::next(std::string &line) {
	const size_t nl = buf_.find('\n');
	if (nl == std::string::npos) return false;
	line.assign(buf_, 0, nl);
	buf_.erase(0, nl + 1);
	if (!line.empty() && line.back() == '\r') line.pop_back();
	return true;
}

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
		r->state_ = State::greeting;
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
	state_ = State::failed;
	error_ = "QMP " + path_ + ": " + why;
	return Progress::failed;
}

Status QmpDisplayRequest::send(uint64_t id, const std::string &command, int pass_fd) {
	want_id_ = id;
	// command is one JSON object and a newline: the id goes in before its closing brace.
	const std::string line = command.substr(0, command.rfind('}')) + ", \"id\": " + std::to_string(id) + "}\n";
	msghdr msg{};
	iovec iov{const_cast<char *>(line.data()), line.size()};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	if (pass_fd >= 0) {
		msg.msg_control = control;
		msg.msg_controllen = sizeof control;
		cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	// A few hundred bytes into an empty socket buffer: all of it goes, or the peer is broken.
	if (::sendmsg(qmp_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(line.size()))
		return fail(std::string("cannot send: ") + (errno == EAGAIN ? "QEMU reads nothing" : std::strerror(errno)));
	return Ok{};
}

QmpDisplayRequest::Progress QmpDisplayRequest::on_line(const std::string &line) {
	using Kind = QmpLine::Kind;
	const QmpLine l = classify_qmp_line(line, want_id_);
	if (l.kind == Kind::event) return Progress::pending;
	if (state_ == State::greeting) {
		if (l.kind != Kind::greeting) return failed("no QMP greeting (is it QEMU's QMP socket?)");
		if (Status s = send(next_id_++, "{\"execute\": \"qmp_capabilities\"}\n"); !s) return failed(s.error());
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
		if (Status s = send(next_id_++, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"vscanout\"}}\n",
		                    theirs_.get());
		    !s)
			return failed(s.error());
		theirs_.reset(); // QEMU has its copy now
		state_ = State::getfd;
		return Progress::pending;
	case State::getfd:
		if (Status s = send(next_id_++, "{\"execute\": \"add_client\", \"arguments\": {\"protocol\": "
		                                "\"@dbus-display\", \"fdname\": \"vscanout\"}}\n");
		    !s)
			return failed(s.error());
		state_ = State::add_client;
		return Progress::pending;
	case State::add_client:
		state_ = State::done;
		qmp_.reset(); // QEMU's monitor is free for its next client
		return Progress::done;
	default: return failed("an answer out of turn");
	}
}

QmpDisplayRequest::Progress QmpDisplayRequest::advance() {
	if (state_ == State::done) return Progress::done;
	if (state_ == State::failed) return Progress::failed;
	if (state_ == State::connecting) {
		pollfd p{qmp_.get(), POLLOUT, 0};
		if (::poll(&p, 1, 0) == 0) return Progress::pending; // not connected yet
		int err = 0;
		socklen_t len = sizeof err;
		if (::getsockopt(qmp_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
		if (err == EINPROGRESS || err == EAGAIN) return Progress::pending;
		if (err) return failed(std::string("cannot connect: ") + std::strerror(err));
		state_ = State::greeting;
	}
	// A bounded amount each time: a peer that floods us cannot keep the event loop busy (the
	// loop comes back while more is there).
	for (int chunks = 0; chunks < 16; chunks++) {
		char chunk[4096];
		const ssize_t n = ::recv(qmp_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Progress::pending;
		if (n < 0) return failed(std::string("cannot read: ") + std::strerror(errno));
		if (n == 0) return failed("QEMU closed the connection");
		if (Status s = reader_.feed(chunk, static_cast<size_t>(n)); !s) return failed(s.error());
		std::string line;
		while (reader_.next(line)) {
			const Progress p = on_line(line);
			if (p != Progress::pending) return p;
		}
	}
	return Progress::pending;
}

} // namespace vscanout::vgpu
