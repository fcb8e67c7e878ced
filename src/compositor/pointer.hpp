// A pointer of the seat (kiosk: libinput; nested: the parent's pointer over one window), handed
// on to the Server, which knows the heads.
#pragma once

#include "compositor/listener.hpp"
#include "compositor/wlr.hpp"

namespace vscanout::compositor {

class Server;

class Pointer {
public:
	Pointer(Server &server, wlr_input_device *device);
	~Pointer();
	Pointer(const Pointer &) = delete;
	Pointer &operator=(const Pointer &) = delete;

	bool alive() const { return device_ != nullptr; }

private:
	wlr_input_device *device_;
	Listener motion_, motion_absolute_, button_, axis_, destroy_;
};

} // namespace vscanout::compositor
