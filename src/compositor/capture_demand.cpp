#include "compositor/capture_demand.hpp"

namespace vscanout::compositor {

// One screencopy client (a bound zwlr_screencopy_manager_v1): the commit of each output it last
// got a copy_with_damage frame of. Its wlroots struct is freed with it, and another client may
// get the same address: the entry goes when its Wayland client goes.
struct CaptureDemand::Client {
	struct Watch {
		wl_listener listener; // first member: a wl_listener* is a Watch*
		Client *client;
	};
	std::map<const wlr_output *, uint64_t> has;
	Watch client_destroy{};
	CaptureDemand *owner = nullptr;
	const wlr_screencopy_v1_client *key = nullptr;
};

struct CaptureDemand::Output {
	uint64_t last = 0; // seq_ of the last buffer commit; 0: none seen yet
	Listener destroy;
};

CaptureDemand::CaptureDemand(wlr_screencopy_manager_v1 *manager) : manager_(manager) {}

CaptureDemand::~CaptureDemand() {
	for (auto &[key, c] : clients_) wl_list_remove(&c->client_destroy.listener.link);
}

CaptureDemand::Output &CaptureDemand::output_state(wlr_output *output) {
	auto &slot = outputs_[output];
	if (!slot) {
		slot = std::make_unique<Output>();
		// A later output at the same address starts with nothing seen.
		slot->destroy.connect(&output->events.destroy, [this, output](void *) {
			for (auto &[key, c] : clients_) c->has.erase(output);
			outputs_.erase(output);
		});
	}
	return *slot;
}

void CaptureDemand::committed(wlr_output *output) {
	Output &o = output_state(output);
	o.last = ++seq_;
	wlr_screencopy_frame_v1 *frame;
	wl_list_for_each(frame, &manager_->frames, link) {
		// Plain copies complete too, but they neither use nor clear the client's damage.
		if (frame->output != output || !frame->buffer || !frame->with_damage || !frame->client) continue;
		auto &slot = clients_[frame->client];
		if (!slot) {
			slot = std::make_unique<Client>();
			slot->owner = this;
			slot->key = frame->client;
			slot->client_destroy.client = slot.get();
			slot->client_destroy.listener.notify = [](wl_listener *l, void *) {
				Client *c = reinterpret_cast<Client::Watch *>(l)->client;
				wl_list_remove(&c->client_destroy.listener.link);
				c->owner->clients_.erase(c->key); // destroys c
			};
			wl_client_add_destroy_listener(wl_resource_get_client(frame->resource), &slot->client_destroy.listener);
		}
		slot->has[output] = o.last;
	}
}

bool CaptureDemand::only_satisfied_frames_wait(const wlr_output *output) const {
	auto o = outputs_.find(output);
	const uint64_t last = o == outputs_.end() ? 0 : o->second->last;
	bool any = false;
	wlr_screencopy_frame_v1 *frame;
	wl_list_for_each(frame, &manager_->frames, link) {
		if (frame->output != output || !frame->buffer) continue;
		any = true;
		if (!frame->with_damage || last == 0) return false;
		auto c = clients_.find(frame->client);
		if (c == clients_.end()) return false; // its first frame: wlroots counts the whole output as damaged
		auto h = c->second->has.find(output);
		if (h == c->second->has.end() || h->second != last) return false;
	}
	return any;
}

} // namespace vscanout::compositor
