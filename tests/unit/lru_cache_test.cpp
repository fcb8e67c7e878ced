// The bounded LRU that owns imports: recency order, eviction counts, and that what it evicts is
// destroyed (for imports: the guest buffer's fd is closed).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd_util.hpp"
#include "base/unique_fd.hpp"
#include "core/lru_cache.hpp"

namespace vscanout::core {
namespace {

// Keys from most to least recently used.
template <typename Cache> std::vector<int> keys_of(const Cache &cache) {
	std::vector<int> keys;
	cache.for_each([&](const int &k, const auto &) { keys.push_back(k); });
	return keys;
}

TEST(LruCache, GetMissesThenHits) {
	LruCache<int, std::string> cache(4);
	EXPECT_EQ(cache.get(1), nullptr);
	EXPECT_EQ(cache.size(), 0u);
	EXPECT_EQ(cache.put(1, "one"), 0u);
	std::string *v = cache.get(1);
	ASSERT_NE(v, nullptr);
	EXPECT_EQ(*v, "one");
	EXPECT_EQ(cache.get(2), nullptr);
	EXPECT_EQ(cache.size(), 1u);
	// get() hands out the stored value, not a copy.
	*v = "uno";
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(*cache.get(1), "uno");
}

TEST(LruCache, PutReportsEvictionsAndRespectsTheBound) {
	LruCache<int, int> cache(3);
	EXPECT_EQ(cache.bound(), 3u);
	EXPECT_EQ(cache.put(1, 10), 0u);
	EXPECT_EQ(cache.put(2, 20), 0u);
	EXPECT_EQ(cache.put(3, 30), 0u);
	EXPECT_EQ(cache.size(), 3u);
	size_t evicted = 0;
	for (int k = 4; k < 104; k++) {
		const size_t e = cache.put(k, k * 10);
		EXPECT_EQ(e, 1u) << "put " << k;
		evicted += e;
		EXPECT_EQ(cache.size(), 3u);
	}
	EXPECT_EQ(evicted, 100u);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{103, 102, 101}));
	EXPECT_EQ(cache.get(100), nullptr);
	ASSERT_NE(cache.get(101), nullptr);
	EXPECT_EQ(*cache.get(101), 1010);
}

TEST(LruCache, EvictsTheLeastRecentlyUsed) {
	LruCache<int, int> cache(3);
	cache.put(1, 10);
	cache.put(2, 20);
	cache.put(3, 30);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{3, 2, 1}));
	// Without the get, 1 would go first; get() makes it the most recent, so 2 goes.
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{1, 3, 2}));
	EXPECT_EQ(cache.put(4, 40), 1u);
	EXPECT_EQ(cache.get(2), nullptr);
	EXPECT_NE(cache.get(1), nullptr);
	EXPECT_NE(cache.get(3), nullptr);
	EXPECT_NE(cache.get(4), nullptr);
	// Order now: 4, 3, 1 (the gets above), so 1 goes next.
	EXPECT_EQ(keys_of(cache), (std::vector<int>{4, 3, 1}));
	EXPECT_EQ(cache.put(5, 50), 1u);
	EXPECT_EQ(cache.get(1), nullptr);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{5, 4, 3}));
	// A miss changes no order.
	EXPECT_EQ(cache.get(99), nullptr);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{5, 4, 3}));
}

TEST(LruCache, PutReplacesAnExistingKeyAndRefreshesIt) {
	LruCache<int, std::string> cache(2);
	cache.put(1, "a");
	cache.put(2, "b");
	EXPECT_EQ(cache.put(1, "c"), 0u); // a replacement evicts nothing
	EXPECT_EQ(cache.size(), 2u);
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(*cache.get(1), "c");
	cache.get(2);                     // 2 most recent
	EXPECT_EQ(cache.put(1, "d"), 0u); // 1 most recent again, by the put alone
	EXPECT_EQ(keys_of(cache), (std::vector<int>{1, 2}));
	EXPECT_EQ(cache.put(3, "e"), 1u);
	EXPECT_EQ(cache.get(2), nullptr);
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(*cache.get(1), "d");
}

TEST(LruCache, Erase) {
	LruCache<int, int> cache(4);
	cache.put(1, 10);
	cache.put(2, 20);
	cache.put(3, 30);
	EXPECT_TRUE(cache.erase(2));
	EXPECT_FALSE(cache.erase(2));
	EXPECT_FALSE(cache.erase(42));
	EXPECT_EQ(cache.size(), 2u);
	EXPECT_EQ(cache.get(2), nullptr);
	EXPECT_EQ(keys_of(cache), (std::vector<int>{3, 1}));
	// The freed slot is usable: two more fit before anything is evicted.
	EXPECT_EQ(cache.put(4, 40), 0u);
	EXPECT_EQ(cache.put(5, 50), 0u);
	EXPECT_EQ(cache.put(6, 60), 1u);
	EXPECT_EQ(cache.get(1), nullptr);
}

TEST(LruCache, Clear) {
	LruCache<int, int> cache(3);
	cache.put(1, 10);
	cache.put(2, 20);
	cache.clear();
	EXPECT_EQ(cache.size(), 0u);
	EXPECT_EQ(cache.get(1), nullptr);
	EXPECT_EQ(cache.get(2), nullptr);
	EXPECT_TRUE(keys_of(cache).empty());
	EXPECT_EQ(cache.bound(), 3u);
	// Usable again after a clear.
	EXPECT_EQ(cache.put(1, 11), 0u);
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(*cache.get(1), 11);
}

TEST(LruCache, BoundBelowOneClampsToOne) {
	LruCache<int, int> cache(0);
	EXPECT_EQ(cache.bound(), 1u);
	EXPECT_EQ(cache.put(1, 10), 0u);
	ASSERT_NE(cache.get(1), nullptr);
	EXPECT_EQ(cache.put(2, 20), 1u);
	EXPECT_EQ(cache.size(), 1u);
	EXPECT_EQ(cache.get(1), nullptr);
	ASSERT_NE(cache.get(2), nullptr);
	EXPECT_EQ(*cache.get(2), 20);

	LruCache<int, int> one(1);
	EXPECT_EQ(one.bound(), 1u);
}

// A value that owns a descriptor, as an import does.
struct FdValue {
	UniqueFd fd;
};

FdValue memfd_value() {
	auto fd = make_memfd("vscanout-lru-test", 4096);
	EXPECT_TRUE(fd.ok()) << fd.error();
	return FdValue{fd ? std::move(*fd) : UniqueFd()};
}

TEST(LruCache, EvictionAndClearCloseOwnedDescriptors) {
	const int baseline = count_open_fds();
	ASSERT_GT(baseline, 0);
	{
		LruCache<int, FdValue> cache(3);
		for (int k = 0; k < 3; k++) EXPECT_EQ(cache.put(k, memfd_value()), 0u);
		EXPECT_EQ(count_open_fds(), baseline + 3);
		// Every further put evicts one and closes its fd.
		for (int k = 3; k < 50; k++) {
			EXPECT_EQ(cache.put(k, memfd_value()), 1u);
			ASSERT_EQ(count_open_fds(), baseline + 3) << "after put " << k;
		}
		// A replacement closes the replaced fd.
		cache.put(49, memfd_value());
		EXPECT_EQ(count_open_fds(), baseline + 3);
		// The values held are open descriptors.
		cache.for_each([](const int &, const FdValue &v) { EXPECT_GE(::fcntl(v.fd.get(), F_GETFD), 0); });
		// erase closes.
		EXPECT_TRUE(cache.erase(48));
		EXPECT_EQ(count_open_fds(), baseline + 2);
		// clear closes everything.
		cache.clear();
		EXPECT_EQ(count_open_fds(), baseline);
		// And the destructor closes what is left.
		cache.put(1, memfd_value());
		cache.put(2, memfd_value());
		EXPECT_EQ(count_open_fds(), baseline + 2);
	}
	EXPECT_EQ(count_open_fds(), baseline);
}

TEST(LruCache, EvictionClosesThePipeEndItOwns) {
	// The cache owns write ends; the test keeps the read ends. A read end sees EOF exactly when
	// its write end was closed, so this checks which value eviction destroyed.
	LruCache<int, FdValue> cache(2);
	std::vector<UniqueFd> readers;
	for (int k = 0; k < 3; k++) {
		int p[2];
		ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
		readers.emplace_back(p[0]);
		cache.put(k, FdValue{UniqueFd(p[1])});
	}
	char c;
	EXPECT_EQ(::read(readers[0].get(), &c, 1), 0) << "evicted write end 0 still open";
	EXPECT_EQ(::read(readers[1].get(), &c, 1), -1) << "write end 1 was closed while cached";
	EXPECT_EQ(::read(readers[2].get(), &c, 1), -1) << "write end 2 was closed while cached";
	cache.clear();
	EXPECT_EQ(::read(readers[1].get(), &c, 1), 0);
	EXPECT_EQ(::read(readers[2].get(), &c, 1), 0);
}

TEST(LruCache, DestroysEachEvictedValueExactlyOnce) {
	auto alive = std::make_shared<int>(0);
	struct Counted {
		std::shared_ptr<int> alive;
		explicit Counted(std::shared_ptr<int> a) : alive(std::move(a)) { ++*alive; }
		Counted(Counted &&o) noexcept = default;
		Counted &operator=(Counted &&o) noexcept {
			if (this != &o) {
				release();
				alive = std::move(o.alive);
			}
			return *this;
		}
		~Counted() { release(); }
		void release() {
			if (alive) --*alive;
			alive.reset();
		}
	};
	{
		LruCache<int, Counted> cache(4);
		for (int k = 0; k < 1000; k++) {
			cache.put(k, Counted(alive));
			ASSERT_EQ(*alive, std::min(k + 1, 4)) << "after put " << k;
		}
		cache.put(999, Counted(alive)); // replace
		EXPECT_EQ(*alive, 4);
		cache.erase(998);
		EXPECT_EQ(*alive, 3);
	}
	EXPECT_EQ(*alive, 0);
}

} // namespace
} // namespace vscanout::core
