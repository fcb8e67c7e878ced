#include "vgpu/qemu_qmp.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace vscanout::vgpu {
namespace {

using Clock = std::chrono::steady_clock;

class Qmp {
public:
	Qmp(UniqueFd fd, Clock::time_point deadline) : fd_(std::move(fd)), deadline_(deadline) {}

	// One reply to the last command: events on the way are skipped. Fails on an error reply.
	Status reply(const char *what) {
		for (;;) {
			auto line = read_line();
			if (!line) return line.take_error();
			if (line->find("\"event\"") != std::string::npos) continue;
			if (line->find("\"return\"") != std::string::npos) return Ok{};
			return fail(std::string("QMP ") + what + ": " + *line);
		}
	}

	Status send(const std::string &json, int pass_fd = -1) {
		msghdr msg{};
		iovec iov{const_cast<char *>(json.data()), json.size()};
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
		if (::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(json.size()))
			return fail(std::string("QMP: cannot send: ") + std::strerror(errno));
		return Ok{};
	}

	Result<std::string> read_line() {
		for (;;) {
			if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
				std::string line = buf_.substr(0, nl);
				buf_.erase(0, nl + 1);
				return line;
			}
			const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
			pollfd p{fd_.get(), POLLIN, 0};
			if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return fail("QMP: no answer in time");
			char chunk[4096];
			const ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
			if (n <= 0) return fail("QMP: QEMU closed the connection");
			buf_.append(chunk, static_cast<size_t>(n));
			if (buf_.size() > (1u << 20)) return fail("QMP: a line longer than 1 MiB");
		}
	}

private:
	UniqueFd fd_;
	Clock::time_point deadline_;
	std::string buf_;
};

} // namespace

Result<UniqueFd> qmp_dbus_display_client(const std::string &path, int timeout_ms) {
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof addr.sun_path) return fail("QMP socket path too long: " + path);
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	UniqueFd qmp(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!qmp) return fail(std::string("QMP: socket: ") + std::strerror(errno));
	if (::connect(qmp.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0)
		return fail("QMP: cannot connect to " + path + ": " + std::strerror(errno));
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return fail(std::string("socketpair: ") + std::strerror(errno));
	UniqueFd ours(sv[0]), theirs(sv[1]);

	Qmp q(std::move(qmp), Clock::now() + std::chrono::milliseconds(timeout_ms));
	auto greeting = q.read_line();
	if (!greeting) return greeting.take_error();
	if (greeting->find("\"QMP\"") == std::string::npos) return fail("QMP: " + path + " is no QMP socket");
	Status s = q.send("{\"execute\": \"qmp_capabilities\"}\n");
	if (s) s = q.reply("qmp_capabilities");
	if (s) s = q.send("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"vscanout\"}}\n", theirs.get());
	if (s) s = q.reply("getfd");
	if (s)
		s = q.send("{\"execute\": \"add_client\", \"arguments\": {\"protocol\": \"@dbus-display\", "
		           "\"fdname\": \"vscanout\"}}\n");
	if (s) s = q.reply("add_client (is QEMU's display -display dbus,p2p=yes?)");
	if (!s) return s.take_error();
	return ours;
}

} // namespace vscanout::vgpu
