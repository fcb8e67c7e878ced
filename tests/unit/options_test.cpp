// The command line (compositor/options.cpp): values and their bounds, errors naming the argument
// at fault, and that one parse leaves nothing behind for the next (getopt keeps state).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compositor/options.hpp"

namespace vscanout::compositor {
namespace {

Result<Options> parse(std::vector<std::string> args) {
	args.insert(args.begin(), "vscanout");
	std::vector<char *> argv;
	for (std::string &a : args) argv.push_back(a.data());
	argv.push_back(nullptr);
	return parse_options(static_cast<int>(args.size()), argv.data());
}

TEST(Options, ValuesAndBounds) {
	auto o =
	    parse({"--source", "sim:heads=1", "-c", "4", "--refresh", "poll:30", "--output", "HEAD-2=HDMI-A-1", "-ds"});
	ASSERT_TRUE(o.ok()) << o.error();
	EXPECT_EQ(o->sources, std::vector<std::string>{"sim:heads=1"});
	EXPECT_EQ(o->cache, 4u);
	EXPECT_EQ(o->refresh, RefreshPolicy::poll);
	EXPECT_EQ(o->refresh_hz, 30);
	EXPECT_EQ(o->output_map.at(2), "HDMI-A-1");
	EXPECT_TRUE(o->debug);
	EXPECT_TRUE(o->allow_vt_switch);
	for (auto bad : std::vector<std::vector<std::string>>{{"-c", "1"},
	                                                      {"--cache", "1025"},
	                                                      {"--poll-hz", "0"},
	                                                      {"--fence-timeout", "600001"},
	                                                      {"--refresh", "poll:"},
	                                                      {"--output", "HEAD-1"},
	                                                      {"--output", "HEAD-1=A", "--output", "HEAD-2=A"},
	                                                      {"stray"},
	                                                      {"--mode", "x"}})
		EXPECT_FALSE(parse(bad).ok()) << bad[0];
}

// An unknown short option inside a cluster is named as itself, not as the argument before it.
TEST(Options, ErrorsNameTheOptionAtFault) {
	auto o = parse({"--debug", "-dX"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "unknown option -X (see --help)");
	o = parse({"-Xd"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "unknown option -X (see --help)");
	o = parse({"--no-such-thing"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "unknown option --no-such-thing (see --help)");
	o = parse({"--cache"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "option --cache needs a value");
	o = parse({"-d", "-c"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "option -c needs a value");
	o = parse({"--debug=yes"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "option --debug takes no value");
	o = parse({"-:"});
	ASSERT_FALSE(o.ok());
	EXPECT_EQ(o.error(), "unknown option -: (see --help)");
}

// Seen while writing fuzz/options_fuzz.cpp (which parses each argv twice with another parse in
// between): with optind = 1, a parse that stopped inside a cluster of short options ("-Xsd",
// stopped at X) left glibc's getopt pointing into that argv; the next parse went on reading the
// freed "sd" (inside glibc, so AddressSanitizer does not see it) and failed on an argument
// nobody gave ("unexpected argument '3'"), or took options nobody gave.
TEST(Options, AParseLeavesNothingForTheNext) {
	EXPECT_FALSE(parse({"-Xsd"}).ok());
	auto o = parse({"--cache", "3"});
	ASSERT_TRUE(o.ok()) << o.error();
	EXPECT_FALSE(o->debug);
	EXPECT_FALSE(o->allow_vt_switch);
	EXPECT_EQ(o->cache, 3u);
}

} // namespace
} // namespace vscanout::compositor
