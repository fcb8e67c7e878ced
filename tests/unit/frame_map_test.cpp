// The mapping between guest pixels and output pixels (render/frame_map.hpp): where the KMS cursor
// goes and where pointer input lands in the guest.
#include <gtest/gtest.h>

#include "render/frame_map.hpp"

namespace {

using vscanout::render::FrameMap;
using vscanout::render::Point;
using vscanout::render::Rect;

TEST(FrameMap, OneToOneIsTheIdentity) {
	const FrameMap m(1024, 768, 1024, 768);
	ASSERT_TRUE(m.valid());
	EXPECT_EQ(m.frame(), (Rect{0, 0, 1024, 768}));
	EXPECT_EQ(m.scale_num(), m.scale_den());
	for (int32_t v : {0, 1, 96, 500, 767}) {
		EXPECT_EQ(m.to_output(v, v), (Point{v, v}));
		EXPECT_EQ(m.to_guest(v + 0.5, v + 0.5), (Point{v, v}));
		EXPECT_EQ(m.to_guest(v, v), (Point{v, v}));
	}
	EXPECT_EQ(m.move({10, 20}, 5, -3), (Point{15, 17}));
}

TEST(FrameMap, LetterboxedFrameMapsBothWays) {
	// 640x480 on 1920x1080: 1440x1080 at x 240, 2.25 output pixels per guest pixel.
	const FrameMap m(640, 480, 1920, 1080);
	EXPECT_EQ(m.frame(), (Rect{240, 0, 1440, 1080}));
	EXPECT_EQ(m.scale_num(), 1440u);
	EXPECT_EQ(m.scale_den(), 640u);
	EXPECT_EQ(m.to_output(0, 0), (Point{240, 0}));
	EXPECT_EQ(m.to_output(320, 240), (Point{960, 540}));
	EXPECT_EQ(m.to_output(640, 480), (Point{1680, 1080}));
	EXPECT_EQ(m.to_guest(960, 540), (Point{320, 240}));
	EXPECT_EQ(m.to_guest(240, 0), (Point{0, 0}));
	EXPECT_EQ(m.to_guest(1679.9, 1079.9), (Point{639, 479}));
}

TEST(FrameMap, PointsOnTheLetterboxClampToTheFrame) {
	const FrameMap m(640, 480, 1920, 1080);
	EXPECT_EQ(m.to_guest(0, 0), (Point{0, 0}));
	EXPECT_EQ(m.to_guest(100, 540), (Point{0, 240}));
	EXPECT_EQ(m.to_guest(1919, 1079), (Point{639, 479}));
	EXPECT_EQ(m.to_guest(-50, 5000), (Point{0, 479}));
}

TEST(FrameMap, OutputPositionsRoundToTheNearestPixel) {
	// The kiosk VM test's case: an 800x480 guest on 1024x768 is scaled 1.28 to 1024x614 at y 77,
	// and the cursor hotspot at guest (96, 96) lands on output (123, 200).
	const FrameMap m(800, 480, 1024, 768);
	EXPECT_EQ(m.frame(), (Rect{0, 77, 1024, 614}));
	EXPECT_EQ(m.to_output(96, 96), (Point{123, 200}));
	// 2/3 of an output pixel per guest pixel, downscaled: 3 guest pixels to 2 output pixels.
	const FrameMap down(1536, 768, 1024, 512);
	EXPECT_EQ(down.to_output(3, 3), (Point{2, 2}));
	EXPECT_EQ(down.to_output(1, 1), (Point{1, 1})); // 0.67 rounds up
	EXPECT_EQ(down.to_output(0, 0), (Point{0, 0}));
}

TEST(FrameMap, GuestPixelsAreAllReachedInOrder) {
	// Upscaled, every guest column is under some output column, left to right.
	const FrameMap m(800, 480, 1024, 768);
	int32_t last = -1;
	for (int32_t x = 0; x < 1024; x++) {
		const int32_t g = m.to_guest(x + 0.5, 400).x;
		ASSERT_TRUE(g == last || g == last + 1) << "output column " << x << " maps to guest " << g << " after " << last;
		last = g;
	}
	EXPECT_EQ(last, 799);
}

TEST(FrameMap, MotionScalesToGuestPixelsAndStopsAtTheEdges) {
	const FrameMap m(640, 480, 1920, 1080); // 2.25 output pixels per guest pixel
	EXPECT_EQ(m.move({320, 240}, 22.5, -45), (Point{330, 220}));
	EXPECT_EQ(m.move({320, 240}, 10000, 10000), (Point{639, 479}));
	EXPECT_EQ(m.move({3, 3}, -100, -100), (Point{0, 0}));
}

TEST(FrameMap, EmptySizesMapNothing) {
	for (const FrameMap &m : {FrameMap(0, 480, 640, 480), FrameMap(640, 0, 640, 480), FrameMap(640, 480, 0, 480),
	                          FrameMap(640, 480, 640, 0)}) {
		EXPECT_FALSE(m.valid());
		EXPECT_EQ(m.to_output(5, 5), (Point{}));
		EXPECT_EQ(m.to_guest(5, 5), (Point{}));
		EXPECT_EQ(m.move({5, 5}, 1, 1), (Point{}));
	}
}

} // namespace
