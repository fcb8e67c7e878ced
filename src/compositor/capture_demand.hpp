// wlr-screencopy clients and a static guest (docs/design.md, "Screen capture and the refresh
// rule"). wlroots asks the compositor for a commit on every copy request (needs_frame), including
// copy_with_damage, which it completes only at a commit that damaged the output since the
// client's last frame. A client that streams (wayvnc) asks again as soon as a frame arrives, so a
// compositor that commits whenever asked redraws a static guest at the client's rate. This keeps
// count of which copy_with_damage clients already have an output's last commit: when every frame
// waiting on an output is such a frame, a commit would only be thrown away (the frames wait for
// damage) and the head commits nothing until the guest changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "compositor/listener.hpp"
#include "compositor/wlr.hpp"

namespace vscanout::compositor {

class CaptureDemand {
public:
	explicit CaptureDemand(wlr_screencopy_manager_v1 *manager);
	~CaptureDemand();
	CaptureDemand(const CaptureDemand &) = delete;
	CaptureDemand &operator=(const CaptureDemand &) = delete;

	// Call at every commit of `output` that carries a buffer, before wlroots hands the waiting
	// frames their copies (a listener on events.commit added before any frame's): the
	// copy_with_damage frames waiting now get this commit.
	void committed(wlr_output *output);
	// True when frames wait on `output` and every one of them is a copy_with_damage frame of a
	// client that already has the output's last commit: a commit without new content serves none.
	bool only_satisfied_frames_wait(const wlr_output *output) const;

private:
	struct Client;
	struct Output;
	Output &output_state(wlr_output *output);

	wlr_screencopy_manager_v1 *manager_;
	uint64_t seq_ = 0; // buffer commits of all outputs, so a value never names two commits
	std::map<const wlr_output *, std::unique_ptr<Output>> outputs_;
	std::map<const wlr_screencopy_v1_client *, std::unique_ptr<Client>> clients_;
};

} // namespace vscanout::compositor
