// A bounded least-recently-used map. Values are owned: eviction destroys them, which for
// imports releases the guest buffer's fd and its GPU memory.
#pragma once

#include <cstddef>
#include <list>
#include <optional>
#include <unordered_map>
#include <utility>

namespace vscanout::core {

template <typename Key, typename Value, typename Hash = std::hash<Key>> class LruCache {
public:
	explicit LruCache(size_t bound) : bound_(bound < 1 ? 1 : bound) {}

	// The value for key, marked most recently used; nullptr on a miss.
	Value *get(const Key &key) {
		auto it = index_.find(key);
		if (it == index_.end()) return nullptr;
		order_.splice(order_.begin(), order_, it->second);
		return &it->second->second;
	}

	// Inserts (or replaces) key as most recently used; returns how many entries were evicted.
	size_t put(const Key &key, Value value) {
		if (auto it = index_.find(key); it != index_.end()) {
			it->second->second = std::move(value);
			order_.splice(order_.begin(), order_, it->second);
			return 0;
		}
		order_.emplace_front(key, std::move(value));
		index_.emplace(key, order_.begin());
		size_t evicted = 0;
		while (order_.size() > bound_) {
			index_.erase(order_.back().first);
			order_.pop_back();
			evicted++;
		}
		return evicted;
	}

	bool erase(const Key &key) {
		auto it = index_.find(key);
		if (it == index_.end()) return false;
		order_.erase(it->second);
		index_.erase(it);
		return true;
	}

	void clear() {
		index_.clear();
		order_.clear();
	}

	size_t size() const { return order_.size(); }
	size_t bound() const { return bound_; }

	// Keys from most to least recently used (for tests and debug logs).
	template <typename F> void for_each(F &&f) const {
		for (const auto &[k, v] : order_) f(k, v);
	}

private:
	size_t bound_;
	std::list<std::pair<Key, Value>> order_;
	std::unordered_map<Key, typename std::list<std::pair<Key, Value>>::iterator, Hash> index_;
};

} // namespace vscanout::core
