// The manager and worker protocol over an in-process network, with broken messages
// that a correct peer never sends: nothing may wait forever because of them.

#include <parc/managers/detail/scheduler.hpp>
#include <parc/managers/detail/wire.hpp>
#include <parc/managers/detail/worker.hpp>

#include <gtest/gtest.h>

namespace {

int identity(int x) { return x; }
PARC_CLOSURE(identity);

struct RecordingSink : parc::detail::Sink {
  int results = 0, cancels = 0;
  std::vector<parc::TaskError> errors;
  void on_result(std::size_t, parc::ByteReader&) override { ++results; }
  void on_error(std::size_t, parc::TaskError error) override { errors.push_back(std::move(error)); }
  void on_cancel(std::size_t) override { ++cancels; }
};

struct Protocol : ::testing::Test {
  static void SetUpTestSuite() { parc::detail::ClosureRegistry::instance().seal(); }
  parc::LoopbackNetwork network{2};
};

TEST_F(Protocol, WorkerRejectsAnUndecodableBatchAndKeepsServing) {
  parc::detail::Worker worker(network.endpoint(1), "host", 1);
  parc::Bytes frame = parc::begin_frame();
  parc::ByteWriter(frame).write(std::uint32_t{3});  // three tasks announced, none present
  network.endpoint(0).send(parc::Traffic::tasks, 1, parc::MessageKind::task_batch,
                           std::move(frame));
  EXPECT_TRUE(worker.step());
  auto reply = network.endpoint(0).try_receive(parc::Traffic::tasks);
  ASSERT_TRUE(reply);
  auto body = reply->body();
  EXPECT_EQ(body.read<std::uint32_t>(), parc::detail::batch_rejected);
  EXPECT_NE(body.read<std::string>().find("rank 1 could not decode a task batch"),
            std::string::npos);
  EXPECT_FALSE(worker.shut_down());
}

TEST_F(Protocol, SchedulerFailsTheTasksOfAGarbledReply) {
  parc::detail::Scheduler scheduler(network.endpoint(0), {});
  ASSERT_EQ(scheduler.workers(), 1);
  const auto farm = scheduler.open_farm(parc::FarmOptions{});
  auto sink = std::make_shared<RecordingSink>();
  for (int i = 0; i < 2; ++i) {
    parc::Bytes arguments;
    parc::ByteWriter(arguments).write(i);
    scheduler.submit(farm, parc::closure_id(identity), std::move(arguments), sink, 0);
  }
  scheduler.dispatch();
  ASSERT_TRUE(network.endpoint(1).try_receive(parc::Traffic::tasks));
  parc::Bytes reply = parc::begin_frame();
  parc::ByteWriter(reply).write(std::uint32_t{7});  // wrong count for the batch
  network.endpoint(1).send(parc::Traffic::tasks, 0, parc::MessageKind::result_batch,
                           std::move(reply));
  scheduler.progress();
  ASSERT_EQ(sink->errors.size(), 1u);
  EXPECT_EQ(sink->errors[0].type_name(), "parc::DecodeError");
  EXPECT_EQ(sink->errors[0].rank(), 1);
  EXPECT_THROW(sink->errors[0].rethrow(), parc::DecodeError);
  EXPECT_EQ(sink->cancels, 1);                 // fail_fast cancelled the task still queued
  EXPECT_EQ(scheduler.outstanding(farm), 0u);  // nothing left to wait for
}

TEST_F(Protocol, WorkerFailsARegionWhoseStartDoesNotDecode) {
  parc::detail::Worker worker(network.endpoint(1), "host", 1);
  parc::Bytes frame = parc::begin_frame();
  parc::ByteWriter out(frame);
  out.write(std::uint64_t{42});           // the region's id
  out.write(parc::closure_id(identity));  // its closure
  out.write(std::uint64_t{1} << 40);      // a member list longer than the message
  network.endpoint(0).send(parc::Traffic::tasks, 1, parc::MessageKind::region_start,
                           std::move(frame));
  EXPECT_TRUE(worker.step());
  auto reply = network.endpoint(0).try_receive(parc::Traffic::tasks);
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->kind, parc::MessageKind::region_result);
  auto body = reply->body();
  EXPECT_EQ(body.read<std::uint64_t>(), 42u);
  parc::detail::RegionOutcome outcome;
  parc::detail::read_region_outcome(body, 1, outcome);
  ASSERT_EQ(outcome.status, parc::detail::TaskStatus::error);
  const auto info = parc::detail::read_error_info(outcome.payload, 1);
  EXPECT_EQ(info.type_name(), "parc::DecodeError");
  EXPECT_NE(info.closure.find("identity"), std::string::npos) << info.closure;
  EXPECT_TRUE(outcome.sent.empty());  // it never joined the region
  EXPECT_FALSE(worker.shut_down());
}

TEST_F(Protocol, ARankThatCouldNotJoinARegionReleasesTheOthers) {
  parc::LoopbackNetwork three{3};
  parc::detail::Scheduler scheduler(three.endpoint(0), {});
  auto sink = std::make_shared<RecordingSink>();
  const auto id = scheduler.open_region(parc::closure_id(identity), {1, 2}, parc::Bytes{}, sink,
                                        std::chrono::seconds(0));
  scheduler.progress();
  for (int worker : {1, 2}) {
    auto start = three.endpoint(worker).try_receive(parc::Traffic::tasks);
    ASSERT_TRUE(start) << "rank " << worker;
    EXPECT_EQ(start->kind, parc::MessageKind::region_start);
  }
  // Rank 1 answers as a worker whose region start did not decode: an error, no counts.
  parc::detail::Worker rank1(three.endpoint(1), "host", 1);
  parc::Bytes garbled = parc::begin_frame();
  parc::ByteWriter(garbled).write(id);
  three.endpoint(0).send(parc::Traffic::tasks, 1, parc::MessageKind::region_start,
                         std::move(garbled));
  EXPECT_TRUE(rank1.step());
  scheduler.progress();
  ASSERT_EQ(sink->errors.size(), 1u);
  EXPECT_EQ(sink->errors[0].rank(), 1);
  // Rank 2, waiting in a collective for rank 1, is released instead of waiting forever.
  auto cancel = three.endpoint(2).try_receive(parc::Traffic::control);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->kind, parc::MessageKind::region_cancel);
  auto body = cancel->body();
  EXPECT_EQ(body.read<std::uint64_t>(), id);
  EXPECT_NE(body.read<std::string>().find("world rank 1) could not join the region"),
            std::string::npos);
  EXPECT_FALSE(scheduler.region_finished(id));  // rank 2 has not answered yet
}

}  // namespace
