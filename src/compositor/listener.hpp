// One small typed wrapper around wl_listener: connect a signal to a callable, disconnect on
// destruction. Replaces wl_container_of scattered through the code.
#pragma once

#include <wayland-server-core.h>

#include <functional>

namespace vscanout::compositor {

class Listener {
public:
	using Handler = std::function<void(void *data)>;

	Listener() { wl_list_init(&node_.listener.link); }
	Listener(const Listener &) = delete;
	Listener &operator=(const Listener &) = delete;
	~Listener() { disconnect(); }

	void connect(wl_signal *signal, Handler handler) {
		disconnect();
		handler_ = std::move(handler);
		node_.listener.notify = &Listener::notify;
		node_.owner = this;
		wl_signal_add(signal, &node_.listener);
	}

	void disconnect() {
		wl_list_remove(&node_.listener.link);
		wl_list_init(&node_.listener.link);
	}

	bool connected() const { return !wl_list_empty(&node_.listener.link); }

private:
	struct Node {
		wl_listener listener; // first member: a wl_listener* is a Node*
		Listener *owner;
	};

	static void notify(wl_listener *l, void *data) {
		auto *node = reinterpret_cast<Node *>(l);
		node->owner->handler_(data);
	}

	Node node_{};
	Handler handler_;
};

} // namespace vscanout::compositor
