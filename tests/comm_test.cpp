#include <parc/comm/archive.hpp>
#include <parc/comm/backoff.hpp>
#include <parc/comm/endpoint.hpp>
#include <parc/comm/frame.hpp>
#include <parc/exceptions/error_info.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

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

}  // namespace
