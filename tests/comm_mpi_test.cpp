#include "support/all_ranks_main.hpp"
#include "support/region_checks.hpp"

#include <parc/comm/backoff.hpp>
#include <parc/comm/region.hpp>
#include <parc/exceptions/errors.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <ctime>
#include <numeric>
#include <thread>

namespace {

using parc::test::environment;

// Receives one message on `traffic`, backing off; fails after a few seconds.
std::optional<parc::Message> receive(parc::Endpoint& endpoint, parc::Traffic traffic) {
  parc::Backoff backoff;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    endpoint.progress();
    if (auto message = endpoint.try_receive(traffic)) return message;
    backoff.pause();
  }
  return std::nullopt;
}

TEST(Environment, RanksAgreeOnTheWorld) {
  auto ranks = environment->allgather(static_cast<std::uint64_t>(environment->rank()));
  ASSERT_EQ(static_cast<int>(ranks.size()), environment->size());
  for (std::size_t r = 0; r < ranks.size(); ++r) EXPECT_EQ(ranks[r], r);
  auto hosts =
      environment->allgather(environment->host() + "#" + std::to_string(environment->rank()));
  EXPECT_EQ(hosts[0], environment->host() + "#0");
}

TEST(Endpoint, RingOfFramesOverEveryTrafficClass) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  const int next = (endpoint->rank() + 1) % size;
  for (auto traffic : {parc::Traffic::tasks, parc::Traffic::control}) {
    parc::Bytes frame = parc::begin_frame();
    parc::ByteWriter out(frame);
    out.write(endpoint->rank());
    out.write(std::vector<double>(100'000, endpoint->rank()));  // above the eager limit
    endpoint->send(traffic, next, parc::MessageKind::task_batch, std::move(frame));
    auto message = receive(*endpoint, traffic);
    ASSERT_TRUE(message) << "nothing received";
    const int previous = (endpoint->rank() + size - 1) % size;
    EXPECT_EQ(message->source, previous);
    EXPECT_EQ(message->kind, parc::MessageKind::task_batch);
    auto body = message->body();
    EXPECT_EQ(body.read<int>(), previous);
    auto values = body.read<std::vector<double>>();
    ASSERT_EQ(values.size(), 100'000u);
    EXPECT_EQ(values.back(), previous);
  }
  parc::Backoff backoff;
  while (endpoint->progress()) backoff.pause();
  environment->barrier();
}

// A frame's tail goes as a message of its own: the receiver must still get one frame per
// send, in order, interleaved with frames without a tail.
TEST(Endpoint, FramesWithTailsArriveWholeAndInOrder) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  const int next = (endpoint->rank() + 1) % size;
  const int previous = (endpoint->rank() + size - 1) % size;
  std::vector<std::shared_ptr<const parc::Bytes>> tails;
  for (int i = 0; i < 4; ++i) {
    parc::Bytes frame = parc::begin_frame();
    parc::ByteWriter out(frame);
    out.write(i);
    if (i % 2 == 0) {
      endpoint->send(parc::Traffic::tasks, next, parc::MessageKind::task_batch, std::move(frame));
      continue;
    }
    auto tail = std::make_shared<parc::Bytes>((1u << 20) + static_cast<std::size_t>(i));
    for (std::size_t b = 0; b < tail->size(); ++b)
      (*tail)[b] = static_cast<char>((b * 7 + static_cast<std::size_t>(endpoint->rank())) % 251);
    tails.push_back(tail);
    endpoint->send(parc::Traffic::tasks, next, parc::MessageKind::task_batch, std::move(frame),
                   std::move(tail));
  }
  for (int i = 0; i < 4; ++i) {
    auto message = receive(*endpoint, parc::Traffic::tasks);
    ASSERT_TRUE(message) << "frame " << i << " not received";
    EXPECT_EQ(message->source, previous);
    auto body = message->body();
    EXPECT_EQ(body.read<int>(), i);
    if (i % 2 == 0) {
      EXPECT_EQ(body.remaining(), 0u);
      continue;
    }
    ASSERT_EQ(body.remaining(), (1u << 20) + static_cast<std::size_t>(i));
    const char* tail = body.take(body.remaining()).data();
    std::size_t wrong = 0;
    for (std::size_t b = 0; b < (1u << 20) + static_cast<std::size_t>(i); ++b)
      wrong += tail[b] != static_cast<char>((b * 7 + static_cast<std::size_t>(previous)) % 251);
    EXPECT_EQ(wrong, 0u) << "frame " << i;
  }
  parc::Backoff backoff;
  while (endpoint->progress()) backoff.pause();
  // The endpoint lets go of a tail once its send completed.
  for (const auto& tail : tails) EXPECT_EQ(tail.use_count(), 1);
  environment->barrier();
}

// Tails anywhere in a frame (large results between small ones in a result batch): each
// goes as a message of its own, and so do the buffer's parts between them; the receiver
// must still get one frame with every byte in its place, frames in order.
TEST(Endpoint, TailsInsideAFrameArriveInPlace) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  const int next = (endpoint->rank() + 1) % size;
  const int previous = (endpoint->rank() + size - 1) % size;
  const auto fill = [](std::size_t n, int seed) {
    auto bytes = std::make_shared<parc::Bytes>(n);
    for (std::size_t b = 0; b < n; ++b)
      (*bytes)[b] = static_cast<char>((b * 13 + static_cast<std::size_t>(seed)) % 251);
    return bytes;
  };
  // Frame i: i + 1 records of (int, block); blocks of every size around the threshold.
  const std::vector<std::size_t> sizes{parc::tail_bytes - 1, parc::tail_bytes, 3,
                                       parc::tail_bytes + 1, 1u << 20,         0};
  std::vector<std::shared_ptr<parc::Bytes>> kept;
  const auto block_size = [&](int frame, int record) {
    return sizes[static_cast<std::size_t>(frame * 3 + record) % sizes.size()];
  };
  for (int i = 0; i < 5; ++i) {
    parc::Bytes frame = parc::begin_frame();
    parc::Splices tails;
    parc::ByteWriter out(frame, &tails);
    for (int r = 0; r <= i; ++r) {
      out.write(r);
      auto block = fill(block_size(i, r), endpoint->rank() * 100 + i * 10 + r);
      kept.push_back(block);
      out.write_tail(parc::Tail{block, block->data(), block->size()});
    }
    out.write(-1);
    endpoint->send(parc::Traffic::tasks, next, parc::MessageKind::result_batch, std::move(frame),
                   std::move(tails));
  }
  for (int i = 0; i < 5; ++i) {
    auto message = receive(*endpoint, parc::Traffic::tasks);
    ASSERT_TRUE(message) << "frame " << i << " not received";
    EXPECT_EQ(message->source, previous);
    auto body = message->body();
    for (int r = 0; r <= i; ++r) {
      ASSERT_EQ(body.read<int>(), r) << "frame " << i;
      const std::size_t n = block_size(i, r);
      const auto expected = fill(n, previous * 100 + i * 10 + r);
      const auto got = body.take(n);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expected->begin()))
          << "frame " << i << ", record " << r;
    }
    EXPECT_EQ(body.read<int>(), -1);
    EXPECT_EQ(body.remaining(), 0u);
  }
  parc::Backoff backoff;
  while (endpoint->progress()) backoff.pause();
  // The endpoint lets go of every tail once its send completed (small ones were copied).
  for (const auto& block : kept) EXPECT_EQ(block.use_count(), 1);
  environment->barrier();
}

TEST(Endpoint, TrafficClassesDoNotMix) {
  auto endpoint = environment->make_endpoint();
  if (endpoint->size() < 2) GTEST_SKIP() << "needs two ranks";
  if (endpoint->rank() == 1) {
    parc::Bytes frame = parc::begin_frame();
    endpoint->send(parc::Traffic::control, 0, parc::MessageKind::cancel, std::move(frame));
  }
  if (endpoint->rank() == 0) {
    auto message = receive(*endpoint, parc::Traffic::control);
    ASSERT_TRUE(message);
    EXPECT_EQ(message->kind, parc::MessageKind::cancel);
    EXPECT_FALSE(endpoint->try_receive(parc::Traffic::tasks));
  }
  parc::Backoff backoff;
  while (endpoint->progress()) backoff.pause();
  environment->barrier();
}

// --- SPMD regions over MPI: every rank of the job is a member ---

using parc::Bytes;
using parc::ReduceOp;
using parc::RegionComm;
using parc::ScalarType;
using Clock = std::chrono::steady_clock;

using parc::test::bytes_of;
using parc::test::check_collectives;
using parc::test::contribution;
using parc::test::first_ranks;
using parc::test::text_of;

// Completes this rank's sends and what cancelled regions left pending (as the runtime
// does at shutdown), then waits for every rank: no test leaves messages behind, which
// MPI would report at exit (ctest fails on UCX warnings).
void finish(parc::Endpoint& endpoint) {
  parc::Backoff backoff;
  while (endpoint.progress()) backoff.pause();
  endpoint.settle(std::chrono::seconds(30));
  environment->barrier();
}

// What the worker's poll hook does: reads the control channel and cancels the region a
// region_cancel names.
struct ControlReader {
  parc::Endpoint& endpoint;
  std::uint64_t region_id = 0;
  RegionComm* region = nullptr;
  int polls = 0;

  void operator()() {
    ++polls;
    while (auto message = endpoint.try_receive(parc::Traffic::control)) {
      ASSERT_EQ(message->kind, parc::MessageKind::region_cancel);
      auto body = message->body();
      const auto id = body.read<std::uint64_t>();
      const auto reason = body.read<std::string>();
      if (region != nullptr && id == region_id) region->cancel(reason);
    }
  }
};

void check_ring(RegionComm& region) {
  const int rank = region.rank();
  const int size = region.size();
  const int next = (rank + 1) % size;
  const int previous = (rank + size - 1) % size;
  for (int i = 0; i < 3; ++i) {
    region.send(bytes_of(std::to_string(rank) + "." + std::to_string(i)), next, 5);
  }
  region.send(Bytes(1'000'000, static_cast<char>('a' + rank)), next, parc::max_region_tag);
  region.send(Bytes{}, next, 0);
  EXPECT_EQ(region.recv(previous, parc::max_region_tag),
            Bytes(1'000'000, static_cast<char>('a' + previous)));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text_of(region.recv(previous, 5)),
              std::to_string(previous) + "." + std::to_string(i));
  }
  EXPECT_TRUE(region.recv(previous, 0).empty());
}

TEST(Region, CollectivesOverEveryRank) {
  auto endpoint = environment->make_endpoint();
  {
    auto region = endpoint->open_region(1, first_ranks(endpoint->size()), [] {});
    EXPECT_EQ(region->rank(), endpoint->rank());
    EXPECT_EQ(region->size(), endpoint->size());
    check_collectives(*region);
    check_collectives(*region);
  }
  finish(*endpoint);
}

TEST(Region, RingExchange) {
  auto endpoint = environment->make_endpoint();
  {
    auto region = endpoint->open_region(2, first_ranks(endpoint->size()), [] {});
    check_ring(*region);
  }
  finish(*endpoint);  // the large sends may complete only now, after the region closed
}

TEST(Region, MembersInReverseOrderAndRegionsOfOne) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  {
    std::vector<int> reversed = first_ranks(size);
    std::reverse(reversed.begin(), reversed.end());
    auto region = endpoint->open_region(3, reversed, [] {});
    EXPECT_EQ(region->rank(), size - 1 - endpoint->rank());
    Bytes from = region->bcast(bytes_of(std::to_string(endpoint->rank())), 0);
    EXPECT_EQ(text_of(from), std::to_string(size - 1));
    // Every rank alone in a region of its own at the same time.
    auto alone = endpoint->open_region(4 + static_cast<std::uint64_t>(endpoint->rank()),
                                       {endpoint->rank()}, [] {});
    EXPECT_EQ(alone->rank(), 0);
    EXPECT_EQ(alone->size(), 1);
    check_collectives(*alone);
    check_ring(*alone);
  }
  finish(*endpoint);
}

template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const parc::UsageError& e) {
    return e.what();
  }
  return "no UsageError";
}

TEST(Region, BadArgumentsAreUsageErrors) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  const int rank = endpoint->rank();
  EXPECT_NE(usage_error([&] {
              endpoint->open_region(9, {size}, {});
            }).find("member " + std::to_string(size) + " is not a rank of this job"),
            std::string::npos);
  EXPECT_NE(usage_error([&] {
              endpoint->open_region(9, {rank, rank}, {});
            }).find("listed twice"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { endpoint->open_region(9, {}, {}); }).find("is not among"),
            std::string::npos);
  {
    auto region = endpoint->open_region(9, {rank}, [] {});
    EXPECT_NE(usage_error([&] {
                region->send({}, 1, 0);
              }).find("dest 1 is not a rank of this region (0..0)"),
              std::string::npos);
    EXPECT_NE(usage_error([&] {
                region->recv(0, parc::max_region_tag + 1);
              }).find("tag 32768 is outside 0..32767"),
              std::string::npos);
    EXPECT_NE(usage_error([&] {
                region->reduce(nullptr, 0, ScalarType::i8, ReduceOp::sum, -1);
              }).find("root -1"),
              std::string::npos);
    double unused = 0;  // checked before it is read
    EXPECT_NE(usage_error([&] {
                region->allreduce(&unused, std::size_t{INT_MAX} + 1, ScalarType::f64,
                                  ReduceOp::sum);
              }).find("exceeds the limit of 2147483647 elements"),
              std::string::npos);
    region->barrier();  // still usable
  }
  finish(*endpoint);
}

// The last rank fails while the others wait in an allreduce: they learn it on the control
// channel through their poll hook, and a fresh region afterwards works.
TEST(Region, CancelAllReleasesRanksInAnAllreduce) {
  auto endpoint = environment->make_endpoint();
  const int size = endpoint->size();
  const int rank = endpoint->rank();
  const std::string reason = "rank " + std::to_string(size - 1) + " failed: ValueError('boom')";
  ControlReader reader{*endpoint};
  {
    reader.region_id = 10;
    auto region = endpoint->open_region(10, first_ranks(size), std::ref(reader));
    reader.region = region.get();
    if (rank == size - 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others wait
      region->cancel_all(reason);
      region->cancel_all("a later reason");  // sends nothing more
      EXPECT_TRUE(region->cancelled());
    } else {
      const auto wall_start = Clock::now();
      const std::clock_t cpu_start = std::clock();
      double value = rank;
      try {
        region->allreduce(&value, 1, ScalarType::f64, ReduceOp::sum);
        ADD_FAILURE() << "the allreduce returned";
      } catch (const parc::CancelledError& e) {
        EXPECT_EQ(e.what(), reason);
      }
      const auto wall = std::chrono::duration<double>(Clock::now() - wall_start).count();
      const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
      EXPECT_LT(wall, 5.0);
      EXPECT_LT(cpu, 0.5 * wall) << "the wait should back off, not spin";
      EXPECT_GT(reader.polls, 20) << "polled about every millisecond of " << wall << " s";
    }
    // Abandoned: everything fails at once from now on.
    EXPECT_THROW(region->barrier(), parc::CancelledError);
    EXPECT_THROW(region->send(Bytes{}, 0, 0), parc::CancelledError);
    try {
      region->recv(0, 0);
      ADD_FAILURE() << "recv on a cancelled region returned";
    } catch (const parc::CancelledError& e) {
      EXPECT_EQ(e.what(), reason);
    }
    reader.region = nullptr;
  }
  {
    reader.region_id = 11;
    auto fresh = endpoint->open_region(11, first_ranks(size), std::ref(reader));
    reader.region = fresh.get();
    check_collectives(*fresh);
    check_ring(*fresh);
    EXPECT_FALSE(fresh->cancelled());
    reader.region = nullptr;
  }
  finish(*endpoint);
  EXPECT_FALSE(endpoint->try_receive(parc::Traffic::control));
}

// cancel() from another thread (the manager's deadline) releases a wait.
TEST(Region, CancelFromAnotherThreadReleasesAWait) {
  auto endpoint = environment->make_endpoint();
  {
    auto region = endpoint->open_region(20, {endpoint->rank()}, [] {});
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      region->cancel("timed out");
    });
    try {
      region->recv(0, 1);  // nothing ever comes
      ADD_FAILURE() << "recv returned";
    } catch (const parc::CancelledError& e) {
      EXPECT_STREQ(e.what(), "timed out");
    }
    canceller.join();
  }
  finish(*endpoint);
}

}  // namespace
