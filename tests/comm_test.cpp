#include <parc/comm/archive.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/comm/frame.hpp>
#include <parc/exceptions/error_info.hpp>

#include <parc/comm/region.hpp>
#include <parc/exceptions/errors.hpp>

#include <gmock/gmock.h>
#include "support/region_checks.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <numeric>
#include <thread>

namespace {

struct Point {  // trivially copyable: raw bytes
  double x, y;
  int tag;
};

struct Labelled {  // needs cereal
  std::string label;
  std::map<std::string, std::vector<int>> series;
  template <class A>
  void serialize(A& ar) {
    ar(label, series);
  }
  bool operator==(const Labelled&) const = default;
};

template <class T>
T round_trip(const T& value) {
  parc::Bytes bytes;
  parc::ByteWriter(bytes).write(value);
  parc::ByteReader reader(bytes.data(), bytes.size());
  T back = reader.read<T>();
  EXPECT_EQ(reader.remaining(), 0u);
  return back;
}

TEST(Archive, TriviallyCopyableValuesAreRawBytes) {
  parc::Bytes bytes;
  parc::ByteWriter(bytes).write(Point{1.5, -2.0, 7});
  EXPECT_EQ(bytes.size(), sizeof(Point));
  Point p = round_trip(Point{1.5, -2.0, 7});
  EXPECT_EQ(p.x, 1.5);
  EXPECT_EQ(p.tag, 7);
}

TEST(Archive, ContiguousRangesAreSizePlusRawBytes) {
  std::vector<double> values{1, 2, 3, 4};
  parc::Bytes bytes;
  parc::ByteWriter(bytes).write(values);
  EXPECT_EQ(bytes.size(), sizeof(std::uint64_t) + 4 * sizeof(double));
  EXPECT_EQ(round_trip(values), values);
  EXPECT_EQ(round_trip(std::string("héllo\0world", 12)), std::string("héllo\0world", 12));
  EXPECT_EQ(round_trip(std::vector<Point>{{1, 2, 3}}).at(0).tag, 3);
}

TEST(Archive, OtherTypesGoThroughCereal) {
  Labelled value{"run", {{"a", {1, 2}}, {"b", {}}}};
  EXPECT_EQ(round_trip(value), value);
  parc::ErrorInfo info;
  info.chain = {{"std::invalid_argument", "bad", true}, {"int", "3", false}};
  info.rank = 3;
  info.closure = "f";
  auto back = round_trip(info);
  EXPECT_EQ(back.chain.size(), 2u);
  EXPECT_EQ(back.chain[1].type_name, "int");
  EXPECT_FALSE(back.chain[1].is_std_exception);
  EXPECT_EQ(back.rank, 3);
}

TEST(Archive, SeveralValuesInSequence) {
  parc::Bytes bytes;
  parc::ByteWriter out(bytes);
  out.write(1);
  out.write(Labelled{"x", {}});
  out.write(std::string("tail"));
  parc::ByteReader in(bytes.data(), bytes.size());
  EXPECT_EQ(in.read<int>(), 1);
  EXPECT_EQ(in.read<Labelled>().label, "x");
  EXPECT_EQ(in.read<std::string>(), "tail");
}

TEST(Archive, TruncatedInputIsADecodeErrorNotACrash) {
  parc::Bytes bytes;
  parc::ByteWriter(bytes).write(std::vector<double>(100, 1.0));
  parc::ByteReader short_read(bytes.data(), 40);
  EXPECT_THROW(short_read.read<std::vector<double>>(), parc::DecodeError);
  parc::ByteReader tiny(bytes.data(), 3);
  EXPECT_THROW(tiny.read<int>(), parc::DecodeError);
  parc::Bytes cereal_bytes;
  parc::ByteWriter(cereal_bytes).write(Labelled{"abcdef", {{"k", {1, 2, 3}}}});
  parc::ByteReader cut(cereal_bytes.data(), cereal_bytes.size() - 5);
  EXPECT_THROW(cut.read<Labelled>(), parc::DecodeError);
}

// What a writer that collects tails produces: the same bytes as a plain writer, once the
// tails are put where their splices say.
parc::Bytes spliced(const parc::Bytes& buffer, const parc::Splices& tails) {
  parc::Bytes whole;
  std::size_t from = 0;
  for (const auto& splice : tails) {
    parc::append(whole, buffer.data() + from, splice.at - from);
    parc::append(whole, splice.tail.data, splice.tail.size);
    from = splice.at;
  }
  parc::append(whole, buffer.data() + from, buffer.size() - from);
  return whole;
}

TEST(Archive, LargeBlocksGoAsTailsWithTheSameBytes) {
  const std::size_t big = parc::tail_bytes;
  auto block = std::make_shared<std::vector<char>>(big + 3, 'b');
  parc::Bytes plain;
  parc::ByteWriter plain_out(plain);
  parc::Bytes buffer;
  parc::Splices tails;
  parc::ByteWriter out(buffer, &tails);
  for (parc::ByteWriter* w : {&plain_out, &out}) {
    w->write(7);
    w->write_tail(parc::Tail{block, block->data(), 10});  // small: copied
    w->write_moved(std::vector<double>(big / 8, 2.5));    // large, moved: a tail
    w->write_moved(std::string(100, 's'));                // small: copied
    w->write_tail(parc::Tail{block, block->data(), block->size()});
    w->write(std::vector<int>(big, 1));  // large but not given away: copied
    w->write(8);
  }
  ASSERT_EQ(tails.size(), 2u);
  EXPECT_EQ(tails[0].tail.size, big);  // the doubles, after their 8-byte length
  EXPECT_EQ(tails[1].tail.data, block->data());
  EXPECT_LT(buffer.size(), plain.size() - 2 * big);
  EXPECT_EQ(spliced(buffer, tails), plain);

  // A mark measures what follows it, tails included, and rewinding drops it all.
  const auto mark = out.mark();
  out.write(std::uint8_t{1});
  out.write_tail(parc::Tail{block, block->data(), block->size()});
  EXPECT_EQ(out.written_since(mark), 1 + block->size());
  out.rewind(mark);
  EXPECT_EQ(out.written_since(mark), 0u);
  EXPECT_EQ(tails.size(), 2u);
  EXPECT_EQ(spliced(buffer, tails), plain);

  // Without a list of tails, everything is copied.
  parc::Bytes copied;
  parc::ByteWriter copy_out(copied);
  copy_out.write_tail(parc::Tail{block, block->data(), block->size()});
  EXPECT_EQ(copied.size(), block->size());
}

TEST(Loopback, PutsTailsInPlace) {
  parc::LoopbackNetwork network(2);
  auto first = std::make_shared<parc::Bytes>(parc::tail_bytes, 'x');
  auto second = std::make_shared<parc::Bytes>(parc::tail_bytes + 1, 'y');
  parc::Bytes frame = parc::begin_frame();
  parc::Splices tails;
  parc::ByteWriter out(frame, &tails);
  out.write(1);
  out.write_tail(parc::Tail{first, first->data(), first->size()});
  out.write(2);
  out.write_tail(parc::Tail{second, second->data(), second->size()});
  ASSERT_EQ(tails.size(), 2u);
  network.endpoint(0).send(parc::Traffic::tasks, 1, parc::MessageKind::task_batch, std::move(frame),
                           std::move(tails));
  auto m = network.endpoint(1).try_receive(parc::Traffic::tasks);
  ASSERT_TRUE(m);
  auto body = m->body();
  EXPECT_EQ(body.read<int>(), 1);
  auto x = body.take(first->size());
  EXPECT_TRUE(std::all_of(x.begin(), x.end(), [](char c) { return c == 'x'; }));
  EXPECT_EQ(body.read<int>(), 2);
  auto y = body.take(second->size());
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), [](char c) { return c == 'y'; }));
  EXPECT_EQ(body.remaining(), 0u);
  EXPECT_EQ(first.use_count(), 1);  // copied: let go of at once
}

TEST(Frame, HeaderIsCheckedOnReceipt) {
  parc::Bytes frame = parc::begin_frame();
  parc::ByteWriter(frame).write(5);
  parc::finish_frame(frame, parc::MessageKind::task_batch);
  EXPECT_EQ(parc::check_frame(frame, 1), parc::MessageKind::task_batch);

  parc::Bytes truncated(frame.begin(), frame.end() - 1);
  EXPECT_THROW(parc::check_frame(truncated, 1), parc::DecodeError);

  parc::Bytes wrong_version = frame;
  wrong_version[4] = 9;
  try {
    parc::check_frame(wrong_version, 3);
    FAIL();
  } catch (const parc::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("from rank 3"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("wire version 9"), std::string::npos);
  }
  parc::Bytes unknown_kind = frame;
  unknown_kind[6] = 77;
  EXPECT_THROW(parc::check_frame(unknown_kind, 1), parc::DecodeError);
  EXPECT_THROW(parc::check_frame(parc::Bytes(3), 1), parc::DecodeError);
}

TEST(Loopback, DeliversPerTrafficClassInOrder) {
  parc::LoopbackNetwork network(3);
  for (int i = 0; i < 3; ++i) {
    parc::Bytes frame = parc::begin_frame();
    parc::ByteWriter(frame).write(i);
    network.endpoint(0).send(parc::Traffic::tasks, 2, parc::MessageKind::task_batch,
                             std::move(frame));
  }
  parc::Bytes control = parc::begin_frame();
  network.endpoint(1).send(parc::Traffic::control, 2, parc::MessageKind::cancel,
                           std::move(control));
  EXPECT_TRUE(network.has_pending(2));
  EXPECT_FALSE(network.has_pending(1));
  auto c = network.endpoint(2).try_receive(parc::Traffic::control);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->source, 1);
  EXPECT_EQ(c->kind, parc::MessageKind::cancel);
  for (int i = 0; i < 3; ++i) {
    auto m = network.endpoint(2).try_receive(parc::Traffic::tasks);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->source, 0);
    EXPECT_EQ(m->body().read<int>(), i);
  }
  EXPECT_FALSE(network.endpoint(2).try_receive(parc::Traffic::tasks));
}

TEST(Backoff, IdleWaitSleepsInsteadOfSpinning) {
  // Idle for 0.3 s: after a short spin and yield phase, pauses sleep, so few of them
  // happen and they take little CPU time.
  parc::Backoff backoff;
  const clock_t cpu_start = std::clock();
  const auto wall_start = std::chrono::steady_clock::now();
  int pauses = 0;
  while (std::chrono::steady_clock::now() - wall_start < std::chrono::milliseconds(300)) {
    backoff.pause();
    ++pauses;
  }
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu, 0.3 * 0.25) << pauses << " pauses";
  backoff.reset();  // activity: the next pause spins again
  const auto spin_start = std::chrono::steady_clock::now();
  backoff.pause();
  EXPECT_LT(std::chrono::steady_clock::now() - spin_start, std::chrono::milliseconds(1));
}

// --- SPMD regions in-process: one thread per rank, as serial mode runs them ---

namespace region_test {

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

// Opens region `id` over `members` of `network` (all on this thread, as the worker does),
// then runs `body` on every rank's region on a thread of its own.
void run_region(parc::LoopbackNetwork& network, std::uint64_t id, const std::vector<int>& members,
                const std::function<void(RegionComm&)>& body) {
  std::vector<std::unique_ptr<RegionComm>> regions;
  for (int member : members) {
    regions.push_back(network.endpoint(member).open_region(id, members, [] {}));
  }
  std::vector<std::thread> threads;
  for (auto& region : regions) {
    threads.emplace_back([&body, &region] {
      try {
        body(*region);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "rank " << region->rank() << " threw: " << e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

void run_region(int size, const std::function<void(RegionComm&)>& body) {
  parc::LoopbackNetwork network(size);
  run_region(network, 1, first_ranks(size), body);
}

// The collectives every region test checks, over MPI too (comm_mpi_test.cpp has a copy).
// Everyone sends first, then receives: buffered sends cannot deadlock. Several messages
// per pair and tag arrive in order; tags keep streams apart.
void check_ring(RegionComm& region) {
  const int rank = region.rank();
  const int size = region.size();
  const int next = (rank + 1) % size;
  const int previous = (rank + size - 1) % size;
  for (int i = 0; i < 3; ++i)
    region.send(bytes_of(std::to_string(rank) + "." + std::to_string(i)), next, 5);
  region.send(bytes_of("other tag"), next, parc::max_region_tag);
  region.send(Bytes{}, next, 0);
  EXPECT_EQ(text_of(region.recv(previous, parc::max_region_tag)), "other tag");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text_of(region.recv(previous, 5)),
              std::to_string(previous) + "." + std::to_string(i));
  }
  EXPECT_TRUE(region.recv(previous, 0).empty());
}

class LocalRegionOfSize : public ::testing::TestWithParam<int> {};

TEST_P(LocalRegionOfSize, CollectivesGiveEveryRankItsValues) {
  run_region(GetParam(), [](RegionComm& region) {
    check_collectives(region);
    check_collectives(region);  // rounds are reused cleanly
  });
}

TEST_P(LocalRegionOfSize, RingExchange) { run_region(GetParam(), check_ring); }

INSTANTIATE_TEST_SUITE_P(Sizes, LocalRegionOfSize, ::testing::Values(1, 3, 4));

TEST(LocalRegion, MembersGiveRegionRanksInTheirOrder) {
  // Two regions open at once on one network, one of them over some ranks in reverse.
  parc::LoopbackNetwork network(4);
  auto a = network.endpoint(3).open_region(7, {3, 1}, {});
  auto b = network.endpoint(1).open_region(7, {3, 1}, {});
  auto c = network.endpoint(0).open_region(8, {0}, {});
  EXPECT_EQ(a->rank(), 0);
  EXPECT_EQ(b->rank(), 1);
  EXPECT_EQ(a->size(), 2);
  EXPECT_EQ(c->size(), 1);
  std::thread other([&] { b->send(bytes_of(text_of(b->bcast({}, 0)) + "!"), 0, 1); });
  a->bcast(bytes_of("hi"), 0);
  EXPECT_EQ(text_of(a->recv(1, 1)), "hi!");
  other.join();
  EXPECT_EQ(text_of(c->allgather(bytes_of("alone")).at(0)), "alone");
}

TEST(Region, ScalarHelpers) {
  EXPECT_EQ(parc::scalar_size(ScalarType::i8), 1u);
  EXPECT_EQ(parc::scalar_size(ScalarType::u16), 2u);
  EXPECT_EQ(parc::scalar_size(ScalarType::f32), 4u);
  EXPECT_EQ(parc::scalar_size(ScalarType::u64), 8u);
  EXPECT_STREQ(parc::reduce_op_name(ReduceOp::prod), "prod");
  EXPECT_STREQ(parc::reduce_op_name(ReduceOp::max), "max");
  std::int32_t a[2] = {INT32_MAX, -4};
  const std::int32_t b[2] = {1, 3};
  parc::reduce_scalars(a, b, 2, ScalarType::i32, ReduceOp::sum);  // wraps, no UB
  EXPECT_EQ(a[0], INT32_MIN);
  EXPECT_EQ(a[1], -1);
  std::uint16_t c = 65535;
  const std::uint16_t d = 65535;
  parc::reduce_scalars(&c, &d, 1, ScalarType::u16, ReduceOp::prod);
  EXPECT_EQ(c, 1);
  float e[2] = {1.5f, -2.0f};
  const float f[2] = {0.5f, 3.0f};
  parc::reduce_scalars(e, f, 2, ScalarType::f32, ReduceOp::min);
  EXPECT_EQ(e[0], 0.5f);
  EXPECT_EQ(e[1], -2.0f);
  EXPECT_THROW(parc::reduce_scalars(e, f, 2, static_cast<ScalarType>(42), ReduceOp::min),
               parc::UsageError);
}

enum class Blocked { allreduce, barrier, recv };

class LocalRegionCancel : public ::testing::TestWithParam<Blocked> {};

TEST_P(LocalRegionCancel, CancelAllReleasesTheOthers) {
  const int size = 4;
  const std::string reason = "rank 3 failed: ValueError('boom')";
  std::atomic<Clock::rep> cancelled_at{0};
  run_region(size, [&](RegionComm& region) {
    if (region.rank() == size - 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the others block
      cancelled_at = Clock::now().time_since_epoch().count();
      region.cancel_all(reason);
      region.cancel_all("a later reason");  // the first one stays
    } else {
      try {
        double value = 1;
        switch (GetParam()) {
          case Blocked::allreduce:
            region.allreduce(&value, 1, ScalarType::f64, ReduceOp::sum);
            break;
          case Blocked::barrier:
            region.barrier();
            break;
          case Blocked::recv:
            region.recv(size - 1, 3);
            break;
        }
        ADD_FAILURE() << "rank " << region.rank() << " was not released";
      } catch (const parc::CancelledError& e) {
        EXPECT_EQ(e.what(), reason);
        const auto waited = Clock::now().time_since_epoch().count() - cancelled_at.load();
        EXPECT_LT(Clock::duration(waited), std::chrono::seconds(5));
      }
    }
    // The region is abandoned: every later operation fails at once, sends too.
    EXPECT_TRUE(region.cancelled());
    EXPECT_THROW(region.barrier(), parc::CancelledError);
    EXPECT_THROW(region.send(Bytes{}, 0, 0), parc::CancelledError);
    EXPECT_THROW(region.recv(0, 0), parc::CancelledError);
  });
}

INSTANTIATE_TEST_SUITE_P(Operations, LocalRegionCancel,
                         ::testing::Values(Blocked::allreduce, Blocked::barrier, Blocked::recv));

TEST(LocalRegion, CancelFromAnotherThreadReleasesEveryRank) {
  // The worker cancels a region from its own thread when the manager says so.
  parc::LoopbackNetwork network(2);
  std::vector<std::unique_ptr<RegionComm>> regions;
  for (int r = 0; r < 2; ++r) regions.push_back(network.endpoint(r).open_region(3, {0, 1}, {}));
  std::vector<std::thread> ranks;
  std::atomic<int> released{0};
  for (auto& region : regions) {
    ranks.emplace_back([&released, r = region.get()] {
      try {
        r->recv(1 - r->rank(), 0);
      } catch (const parc::CancelledError& e) {
        if (std::string(e.what()) == "timed out") ++released;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  regions[0]->cancel("timed out");
  for (auto& thread : ranks) thread.join();
  EXPECT_EQ(released, 2);
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

TEST(LocalRegion, BadRanksAndTagsAreUsageErrors) {
  parc::LoopbackNetwork network(3);
  auto region = network.endpoint(0).open_region(1, {0, 2}, {});
  using ::testing::HasSubstr;
  EXPECT_THAT(usage_error([&] { region->send({}, 2, 0); }),
              HasSubstr("dest 2 is not a rank of this region (0..1)"));
  EXPECT_THAT(usage_error([&] { region->recv(-1, 0); }), HasSubstr("source -1"));
  EXPECT_THAT(usage_error([&] { region->send({}, 1, -1); }),
              HasSubstr("tag -1 is outside 0..32767"));
  EXPECT_THAT(usage_error([&] { region->recv(1, parc::max_region_tag + 1); }),
              HasSubstr("tag 32768"));
  EXPECT_THAT(usage_error([&] { region->bcast({}, 2); }), HasSubstr("bcast: root 2"));
  EXPECT_THAT(usage_error([&] { region->gather({}, -3); }), HasSubstr("gather: root -3"));
  EXPECT_THAT(usage_error([&] { region->scatter({}, 0); }), HasSubstr("gave 0 parts for 2 ranks"));
  EXPECT_THAT(usage_error([&] {
                network.endpoint(1).open_region(2, {0, 2}, {});
              }),
              HasSubstr("this rank (1) is not among"));
  EXPECT_THAT(usage_error([&] {
                network.endpoint(1).open_region(2, {1, 3}, {});
              }),
              HasSubstr("member 3 is not a rank of this job (0..2)"));
  EXPECT_THAT(usage_error([&] {
                network.endpoint(1).open_region(2, {1, 1}, {});
              }),
              HasSubstr("listed twice"));
  EXPECT_THAT(usage_error([&] {
                network.endpoint(0).open_region(1, {0, 2}, {});
              }),
              HasSubstr("opened region 1 twice"));
  EXPECT_THAT(usage_error([&] {
                network.endpoint(2).open_region(1, {2, 0}, {});
              }),
              HasSubstr("different members"));
}

}  // namespace region_test

}  // namespace
