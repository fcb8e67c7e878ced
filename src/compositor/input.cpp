// Input to the guest: the seat's keyboards (real and virtual) and pointers, for sources that
// take input (QEMU). Keys go to the focused head: the one the pointer was last over, at first
// the lowest-numbered head.
#include <linux/input-event-codes.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "compositor/head.hpp"
#include "compositor/keyboard.hpp"
#include "compositor/pointer.hpp"
#include "compositor/server.hpp"
#include "render/frame_map.hpp"

namespace vscanout::compositor {

Pointer::Pointer(Server &server, wlr_input_device *device) : device_(device) {
	wlr_pointer *p = wlr_pointer_from_input_device(device);
	motion_.connect(&p->events.motion, [&server](void *data) {
		auto *e = static_cast<wlr_pointer_motion_event *>(data);
		server.pointer_relative(e->pointer, e->delta_x, e->delta_y);
	});
	motion_absolute_.connect(&p->events.motion_absolute, [&server](void *data) {
		auto *e = static_cast<wlr_pointer_motion_absolute_event *>(data);
		server.pointer_absolute(e->pointer, e->x, e->y);
	});
	button_.connect(&p->events.button, [&server](void *data) {
		auto *e = static_cast<wlr_pointer_button_event *>(data);
		server.pointer_button(e->pointer, e->button, e->state == WL_POINTER_BUTTON_STATE_PRESSED);
	});
	axis_.connect(&p->events.axis, [&server](void *data) {
		auto *e = static_cast<wlr_pointer_axis_event *>(data);
		if (e->orientation != WL_POINTER_AXIS_VERTICAL_SCROLL) return;
		// delta_discrete counts in 120ths of a wheel step (high-resolution wheels send less).
		const int32_t steps = e->delta_discrete ? e->delta_discrete / WLR_POINTER_AXIS_DISCRETE_STEP
		                                        : (e->delta > 0   ? 1
		                                           : e->delta < 0 ? -1
		                                                          : 0);
		if (steps) server.pointer_wheel(e->pointer, steps);
	});
	destroy_.connect(&device->events.destroy, [this](void *) {
		motion_.disconnect();
		motion_absolute_.disconnect();
		button_.disconnect();
		axis_.disconnect();
		destroy_.disconnect();
		device_ = nullptr;
	});
}

Pointer::~Pointer() {
	motion_.disconnect();
	motion_absolute_.disconnect();
	button_.disconnect();
	axis_.disconnect();
	destroy_.disconnect();
}

void Server::init_input() {
	new_input_.connect(&backend_->events.new_input,
	                   [this](void *data) { on_new_input(static_cast<wlr_input_device *>(data)); });
	// A seat, so that clients such as wtype can make a virtual keyboard on it.
	seat_ = wlr_seat_create(display_, "seat0");
	wlr_seat_set_capabilities(seat_, WL_SEAT_CAPABILITY_KEYBOARD | WL_SEAT_CAPABILITY_POINTER);
	virtual_keyboards_ = wlr_virtual_keyboard_manager_v1_create(display_);
	new_virtual_keyboard_.connect(&virtual_keyboards_->events.new_virtual_keyboard, [this](void *data) {
		auto *keyboard = static_cast<wlr_virtual_keyboard_v1 *>(data);
		add_keyboard(&keyboard->keyboard.base, true);
	});
	// Virtual pointers (wayvnc, a test's pointer): over the output the client names, if it names
	// one (zwlr_virtual_pointer_manager_v1 version 2), else over the focused head.
	virtual_pointers_ = wlr_virtual_pointer_manager_v1_create(display_);
	new_virtual_pointer_.connect(&virtual_pointers_->events.new_virtual_pointer, [this](void *data) {
		auto *event = static_cast<wlr_virtual_pointer_v1_new_pointer_event *>(data);
		wlr_pointer *pointer = &event->new_pointer->pointer;
		if (event->suggested_output && !pointer->output_name)
			pointer->output_name = strdup(event->suggested_output->name); // freed by wlroots with the pointer
		add_pointer(&pointer->base);
	});
}

void Server::on_new_input(wlr_input_device *device) {
	if (device->type == WLR_INPUT_DEVICE_KEYBOARD) {
		add_keyboard(device, false);
	} else if (device->type == WLR_INPUT_DEVICE_POINTER) {
		add_pointer(device);
	}
}

void Server::add_pointer(wlr_input_device *device) {
	std::erase_if(pointers_, [](const auto &p) { return !p->alive(); });
	pointers_.push_back(std::make_unique<Pointer>(*this, device));
	const char *over = wlr_pointer_from_input_device(device)->output_name;
	wlr_log(WLR_INFO, "pointer %s%s%s", device->name, over ? " over " : "", over ? over : "");
}

void Server::add_keyboard(wlr_input_device *device, bool is_virtual) {
	std::erase_if(keyboards_, [](const auto &k) { return !k->alive(); });
	auto sink = [this](uint32_t code, bool pressed) {
		if (Head *h = focused_head(); h && source_->takes_input()) source_->key(h->id(), code, pressed);
	};
	keyboards_.push_back(std::make_unique<Keyboard>(wlr_keyboard_from_input_device(device), is_virtual, session_,
	                                                options_.allow_vt_switch, sink));
	wlr_log(WLR_INFO, "keyboard %s%s: keys go to the focused head's guest", device->name,
	        is_virtual ? " (virtual)" : "");
}

Head *Server::focused_head() {
	if (auto it = heads_.find(focus_); it != heads_.end()) return it->second.get();
	return heads_.empty() ? nullptr : heads_.begin()->second.get();
}

Head *Server::head_of_device(wlr_pointer *pointer) {
	// The wayland and X11 backends give each window its own pointer device, named after its
	// output: wayland's after vscanout named it HEAD-<id>, X11's before (X11-<n>).
	if (pointer->output_name) {
		const std::string name = pointer->output_name;
		for (auto &[id, head] : heads_)
			if (head->output() && (name == head->output()->name || name == head->connector())) return head.get();
	}
	return focused_head();
}

void Server::pointer_absolute(wlr_pointer *pointer, double x, double y) {
	Head *head = head_of_device(pointer);
	if (!head || !head->output() || !source_->takes_input()) return;
	focus_ = head->id();
	// From the window back to the guest frame: undo the letterbox and the scale.
	const render::FrameMap map = head->frame_map();
	if (!map.valid()) return;
	const render::Point at = map.to_guest(x * head->output()->width, y * head->output()->height);
	if (source_->pointer_absolute(head->id())) {
		source_->pointer_to(head->id(), static_cast<uint32_t>(at.x), static_cast<uint32_t>(at.y));
	} else {
		// A relative guest pointer follows by the difference from the last position.
		auto last = pointer_last_.find(head->id());
		if (last != pointer_last_.end()) source_->pointer_by(head->id(), at.x - last->second.x, at.y - last->second.y);
	}
	pointer_last_[head->id()] = at;
}

void Server::pointer_relative(wlr_pointer *pointer, double dx, double dy) {
	Head *head = head_of_device(pointer);
	if (!head || !head->output() || !source_->takes_input()) return;
	const uint32_t id = head->id();
	if (!source_->pointer_absolute(id)) {
		source_->pointer_by(id, static_cast<int32_t>(std::lround(dx)), static_cast<int32_t>(std::lround(dy)));
		return;
	}
	// An absolute guest pointer takes positions. Nested, the parent sends those too (above);
	// in a kiosk the mouse moves a position of our own over the guest frame.
	if (nested_) return;
	const render::FrameMap map = head->frame_map();
	if (!map.valid()) return;
	const render::ShownPlane &p = head->tracker().primary(); // valid: the guest frame is shown
	auto [it, fresh] = pointer_last_.try_emplace(
	    id, render::Point{static_cast<int32_t>(p.info.width / 2), static_cast<int32_t>(p.info.height / 2)});
	it->second = map.move(it->second, dx, dy);
	source_->pointer_to(id, static_cast<uint32_t>(it->second.x), static_cast<uint32_t>(it->second.y));
}

void Server::pointer_button(wlr_pointer *pointer, uint32_t button, bool pressed) {
	Head *head = head_of_device(pointer);
	if (!head || !source_->takes_input()) return;
	focus_ = head->id();
	source_->pointer_button(head->id(), button, pressed);
}

void Server::pointer_wheel(wlr_pointer *pointer, int32_t steps) {
	Head *head = head_of_device(pointer);
	if (head && source_->takes_input()) source_->pointer_wheel(head->id(), steps);
}

} // namespace vscanout::compositor
