// Large payloads: arguments and results of 64 KiB or more travel as tails of their frames
// (docs/architecture.md, "Frame header"), sent from where they lie. These tests would fail
// if a tail went missing, arrived out of place or in the wrong order, or were let go of
// before its send completed.

#include "support/runtime_main.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace app {

// n bytes of a pattern that differs per key: a tail in the wrong place shows.
std::vector<char> pattern(std::size_t n, int key) {
  std::vector<char> bytes(n);
  for (std::size_t i = 0; i < n; ++i) {
    bytes[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(key) * 7 + (i >> 12)) % 251);
  }
  return bytes;
}

std::vector<char> blob(int key, std::uint64_t size) {
  return pattern(static_cast<std::size_t>(size), key);
}
PARC_CLOSURE(blob);

std::string text(int key, std::uint64_t size) {
  std::vector<char> bytes = pattern(static_cast<std::size_t>(size), key);
  return std::string(bytes.begin(), bytes.end());
}
PARC_CLOSURE(text);

// Fails the first attempt on each worker for keys divisible by 3: the retried task's
// large result must still arrive whole (and the failed attempt's leave no trace).
std::vector<char> flaky_blob(int key, std::uint64_t size) {
  static std::set<int> seen;
  if (key % 3 == 0 && seen.insert(key).second) throw std::runtime_error("first attempt");
  return pattern(static_cast<std::size_t>(size), key);
}
PARC_CLOSURE(flaky_blob);

// Fails for keys divisible by 5, after its batch-mates produced large results.
std::vector<double> doubles_or_fail(int key, std::uint64_t count) {
  if (key % 5 == 0) throw std::invalid_argument("key " + std::to_string(key));
  std::vector<double> values(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = key + 0.5 * static_cast<double>(i);
  return values;
}
PARC_CLOSURE(doubles_or_fail);

// Large in and large out: the argument reversed.
std::vector<std::uint32_t> reversed(std::vector<std::uint32_t> data) {
  return std::vector<std::uint32_t>(data.rbegin(), data.rend());
}
PARC_CLOSURE(reversed);

}  // namespace app

namespace {

parc::Runtime& rt() { return *parc::test::runtime; }

constexpr std::uint64_t threshold = 64 * 1024;

// Sizes around the tail threshold and far above it, mixed with small ones.
std::vector<std::uint64_t> sizes_for(int count) {
  const std::vector<std::uint64_t> sizes{0,
                                         1,
                                         100,
                                         threshold - 9,  // with its 8-byte length: just below
                                         threshold - 8,
                                         threshold - 1,
                                         threshold,
                                         threshold + 1,
                                         200'000,
                                         1 << 20,
                                         (3 << 20) + 5};
  std::vector<std::uint64_t> out;
  for (int i = 0; i < count; ++i)
    out.push_back(sizes[static_cast<std::size_t>(i * 7) % sizes.size()]);
  return out;
}

TEST(LargeResults, OfEverySizeArriveWholeAndInOrder) {
  parc::TaskFarm farm(rt());
  std::vector<std::tuple<int, std::uint64_t>> calls;
  const auto sizes = sizes_for(120);
  for (int key = 0; key < 120; ++key) calls.emplace_back(key, sizes[static_cast<std::size_t>(key)]);
  // Short tasks: batched, so large results sit between small ones in one reply.
  const auto before = rt().scheduler().counters();
  const auto results = farm.map(app::blob, calls);
  const auto after = rt().scheduler().counters();
  ASSERT_EQ(results.size(), calls.size());
  for (int key = 0; key < 120; ++key) {
    const auto& got = results[static_cast<std::size_t>(key)];
    EXPECT_EQ(got, app::pattern(sizes[static_cast<std::size_t>(key)], key)) << "key " << key;
  }
  EXPECT_LT(after.batches_sent - before.batches_sent, 120u) << "no batch held several tasks";
  const auto strings = farm.map(app::text, calls);
  for (int key = 0; key < 120; ++key) {
    const auto expected = app::pattern(sizes[static_cast<std::size_t>(key)], key);
    EXPECT_EQ(strings[static_cast<std::size_t>(key)], std::string(expected.begin(), expected.end()))
        << "key " << key;
  }
}

TEST(LargeResults, SurviveRetries) {
  parc::FarmOptions options;
  options.retries = rt().workers() + 1;
  parc::TaskFarm farm(rt(), options);
  std::vector<std::tuple<int, std::uint64_t>> calls;
  const auto sizes = sizes_for(60);
  for (int key = 0; key < 60; ++key)
    calls.emplace_back(key + 7000, sizes[static_cast<std::size_t>(key)]);
  const auto results = farm.map(app::flaky_blob, calls);
  for (int key = 0; key < 60; ++key) {
    EXPECT_EQ(results[static_cast<std::size_t>(key)],
              app::pattern(sizes[static_cast<std::size_t>(key)], key + 7000))
        << "key " << key + 7000;
  }
}

TEST(LargeResults, BesideFailuresOfTheSameBatch) {
  parc::TaskFarm farm(rt(), parc::Policy::collect_all);
  std::vector<parc::Future<std::vector<double>>> futures;
  std::vector<std::tuple<int, std::uint64_t>> calls;
  for (int key = 1; key <= 40; ++key) {
    calls.emplace_back(key, key % 2 == 0 ? 20'000 + static_cast<std::uint64_t>(key) : 3);
  }
  futures = farm.submit_batch(app::doubles_or_fail, calls);
  for (int key = 1; key <= 40; ++key) {
    auto& future = futures[static_cast<std::size_t>(key - 1)];
    if (key % 5 == 0) {
      EXPECT_THROW(future.get(), std::invalid_argument) << "key " << key;
      continue;
    }
    const auto values = future.get();
    ASSERT_EQ(values.size(), key % 2 == 0 ? 20'000u + static_cast<std::size_t>(key) : 3u);
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (values[i] != key + 0.5 * static_cast<double>(i)) {
        ADD_FAILURE() << "key " << key << ", value " << i;
        break;
      }
    }
  }
}

TEST(LargeResults, LargeArgumentsAndResultsTogether) {
  parc::TaskFarm farm(rt());
  std::vector<std::vector<std::uint32_t>> inputs;
  for (int key = 0; key < 24; ++key) {
    const std::size_t n = key % 3 == 0 ? 5 : (key % 3 == 1 ? threshold / 4 : 600'000);
    std::vector<std::uint32_t> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<std::uint32_t>(i * 17 + key);
    inputs.push_back(std::move(data));
  }
  const auto results = farm.map(app::reversed, inputs);
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    EXPECT_EQ(results[k], std::vector<std::uint32_t>(inputs[k].rbegin(), inputs[k].rend()))
        << "input " << k;
  }
  // One at a time too: each result comes back before the next task is sent.
  for (std::size_t k = 0; k < inputs.size(); k += 5) {
    EXPECT_EQ(farm.submit(app::reversed, inputs[k]).get(),
              std::vector<std::uint32_t>(inputs[k].rbegin(), inputs[k].rend()));
  }
}

}  // namespace
