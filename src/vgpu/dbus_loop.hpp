// sd-bus connections served from a compositor's event loop without ever blocking.
//
// Every connection's fd sits in one epoll set, and sd-bus's timeouts (method-call replies) are
// a timerfd in it too: the loop watches one fd that never changes, however many connections come
// and go, and calls dispatch() when it is readable. Calls are asynchronous only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/sd_bus_ref.hpp"

struct sd_bus;
struct sd_bus_message;

struct epoll_event;

namespace vscanout::vgpu::dbus {

std::string errno_text(int e); // sd-bus returns -errno

// One value of an a{sv} dictionary, for the types QEMU's display objects use (s, u, b, au).
struct Prop {
	std::string s;
	uint64_t u = 0;
	bool b = false;
	std::vector<uint32_t> au;
};

// Reads an a{sv} (Properties.GetAll's answer, PropertiesChanged's second argument) into
// name -> value; other types are skipped. False on a malformed message.
bool read_props(sd_bus_message *m, std::map<std::string, Prop> &out);

// A method reply's error text, or nullptr when it is no error.
const char *error_of(sd_bus_message *reply);

// Sends msg (taking it) and calls on_reply with the answer or error, from a later dispatch.
// The connection owns the pending call: it is dropped, unanswered, with the connection.
void call(sd_bus *bus, Message msg, std::function<void(sd_bus_message *)> on_reply);

// The connections it serves are not its own: their owners add and remove them.
class Loop {
public:
	static Result<Loop> create();

	int fd() const { return epoll_.get(); }
	void add(sd_bus *bus);
	void remove(sd_bus *bus);
	// Another fd to wake the loop (a timer of the owner's); the owner reads it in dispatch.
	void add_fd(int fd);
	// An fd of the owner's watched for readability, or for writability when `write` (a
	// connect in progress); watch_fd again to switch. The owner removes it before closing it.
	void watch_fd(int fd, bool write);
	void unwatch_fd(int fd);
	// Empties the epoll set's and the timer's readiness; then process each connection.
	void wake();
	// Processes what a connection has, a bounded number of messages; < 0 when it broke.
	static int process(sd_bus *bus);
	// After processing or sending: what each connection waits for, and the next timeout.
	void refresh();

private:
	// epoll_ctl, its failure logged (an ADD or MOD that fails leaves a connection deaf).
	void ctl(int op, int fd, epoll_event *ev) const;
	UniqueFd epoll_;
	UniqueFd timer_;
	std::vector<sd_bus *> buses_;
};

} // namespace vscanout::vgpu::dbus
