#include "support/all_ranks_main.hpp"

#include <parc/comm/backoff.hpp>

#include <gtest/gtest.h>

#include <chrono>

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

}  // namespace
