// Which path shows the guest cursor (compositor/cursor_path.hpp): the output's own path (the KMS
// plane, the parent's pointer) while it takes the images, software otherwise; when the frame must
// be drawn again.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "compositor/cursor_path.hpp"

namespace {

using vscanout::compositor::CursorPath;
using vscanout::compositor::CursorPaths;
using vscanout::render::FrameMap;
using vscanout::render::ShownPlane;
using Shown = CursorPath::Shown;

// A device path that answers what the test tells it and records what it was asked.
class FakePath final : public CursorPath {
public:
	explicit FakePath(std::vector<Shown> answers, int *images = nullptr)
	    : answers_(std::move(answers)), images_(images) {}
	const char *name() const override { return "fake"; }
	Shown set_image(const ShownPlane &, const ShownPlane &, const FrameMap &) override {
		if (images_) ++*images_;
		const Shown s = answers_.empty() ? Shown::yes : answers_.front();
		if (!answers_.empty()) answers_.erase(answers_.begin());
		return s;
	}
	void move(const ShownPlane &, const FrameMap &) override {}

private:
	std::vector<Shown> answers_;
	int *images_;
};

struct CursorPathsTest : ::testing::Test {
	CursorPaths paths;
	ShownPlane cursor, primary;
	FrameMap map{64, 64, 64, 64};
	bool offer() { return paths.offer_image(cursor, primary, map, "HEAD-0"); }
	std::string current() const { return paths.current().name(); }
};

TEST_F(CursorPathsTest, WithoutADevicePathTheFrameDrawsTheCursor) {
	EXPECT_EQ(current(), "software");
	EXPECT_TRUE(paths.current().in_frame());
	EXPECT_EQ(paths.device(), nullptr);
	EXPECT_FALSE(offer()); // nobody to offer it to: software goes on
	EXPECT_EQ(current(), "software");
}

TEST_F(CursorPathsTest, ADeviceUsedAtOnceTakesTheCursorOutOfTheFrame) {
	EXPECT_TRUE(paths.set_device(std::make_unique<FakePath>(std::vector<Shown>{}), true));
	EXPECT_EQ(current(), "fake");
	EXPECT_FALSE(paths.current().in_frame());
	EXPECT_FALSE(offer()); // taken: no change, no redraw
	EXPECT_EQ(current(), "fake");
}

TEST_F(CursorPathsTest, ADeviceNotUsedAtOnceWaitsForItsFirstImage) {
	EXPECT_FALSE(paths.set_device(std::make_unique<FakePath>(std::vector<Shown>{}), false));
	EXPECT_EQ(current(), "software");
	EXPECT_TRUE(offer());
	EXPECT_EQ(current(), "fake");
}

TEST_F(CursorPathsTest, ARefusedImageIsDrawnInSoftwareUntilTheDeviceTakesOneAgain) {
	int images = 0;
	paths.set_device(
	    std::make_unique<FakePath>(std::vector<Shown>{Shown::refused, Shown::refused, Shown::yes}, &images), true);
	EXPECT_TRUE(offer()); // refused: the frame draws it now
	EXPECT_EQ(current(), "software");
	EXPECT_FALSE(offer()); // refused again: still software, nothing to redraw
	EXPECT_EQ(current(), "software");
	EXPECT_TRUE(offer()); // taken: the frame stops drawing it
	EXPECT_EQ(current(), "fake");
	EXPECT_EQ(images, 3); // every image is offered to the device, also while in software
}

TEST_F(CursorPathsTest, NoCursorToShowKeepsThePathInUse) {
	paths.set_device(std::make_unique<FakePath>(std::vector<Shown>{Shown::none, Shown::refused, Shown::none}), true);
	EXPECT_FALSE(offer());
	EXPECT_EQ(current(), "fake");
	EXPECT_TRUE(offer());
	EXPECT_EQ(current(), "software");
	EXPECT_FALSE(offer()); // a hidden cursor does not bring the device back
	EXPECT_EQ(current(), "software");
}

TEST_F(CursorPathsTest, RemovingTheDeviceGivesTheCursorBackToTheFrame) {
	paths.set_device(std::make_unique<FakePath>(std::vector<Shown>{}), true);
	EXPECT_TRUE(paths.set_device(nullptr, true));
	EXPECT_EQ(current(), "software");
	EXPECT_EQ(paths.device(), nullptr);
	EXPECT_FALSE(paths.set_device(nullptr, true)); // already software: nothing to redraw
}

} // namespace
