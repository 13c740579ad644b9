#pragma once
// Checks of a region's collectives shared by the in-process (comm_test) and MPI
// (comm_mpi_test) region tests: every kind of region must give the same answers.

#include <parc/comm/region.hpp>

#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <string>
#include <vector>

namespace parc::test {

inline Bytes bytes_of(const std::string& text) { return Bytes(text.begin(), text.end()); }
inline std::string text_of(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }
// Rank r's contribution: r copies of the letter 'a' + r (rank 0's is empty).
inline std::string contribution(int rank) {
  return std::string(static_cast<std::size_t>(rank), static_cast<char>('a' + rank));
}

// Ranks 0..size-1: the members of a region over the first `size` ranks.
inline std::vector<int> first_ranks(int size) {
  std::vector<int> members(static_cast<std::size_t>(size));
  std::iota(members.begin(), members.end(), 0);
  return members;
}

// Every collective, with values that differ per rank (empty ones included), and every
// reduction operation.
inline void check_collectives(RegionComm& region) {
  const int rank = region.rank();
  const int size = region.size();
  region.barrier();

  const int root = size - 1;
  Bytes got = region.bcast(bytes_of(rank == root ? "from the root" : "ignored"), root);
  EXPECT_EQ(text_of(got), "from the root");
  EXPECT_TRUE(region.bcast(Bytes{}, 0).empty());
  Bytes large(300'000, static_cast<char>(rank == 0 ? 'L' : '?'));  // above the eager limit
  EXPECT_EQ(region.bcast(large, 0), Bytes(300'000, 'L'));

  auto gathered = region.gather(bytes_of(contribution(rank)), 0);
  if (rank == 0) {
    ASSERT_EQ(static_cast<int>(gathered.size()), size);
    for (int r = 0; r < size; ++r) EXPECT_EQ(text_of(gathered[r]), contribution(r));
  } else {
    EXPECT_TRUE(gathered.empty());
  }
  auto everyone = region.allgather(bytes_of(contribution(rank)));
  ASSERT_EQ(static_cast<int>(everyone.size()), size);
  for (int r = 0; r < size; ++r) EXPECT_EQ(text_of(everyone[r]), contribution(r));
  EXPECT_EQ(region.allgather(Bytes{}), std::vector<Bytes>(static_cast<std::size_t>(size)));

  std::vector<Bytes> parts;
  if (rank == root) {
    for (int r = 0; r < size; ++r) parts.push_back(bytes_of(contribution(r)));
  }
  EXPECT_EQ(text_of(region.scatter(std::move(parts), root)), contribution(rank));

  const double expected_sum = size * (size - 1) / 2.0;
  for (auto op :
       {parc::ReduceOp::sum, parc::ReduceOp::prod, parc::ReduceOp::min, parc::ReduceOp::max}) {
    std::array<double, 2> values{rank + 1.0, -1.0 * rank};
    region.allreduce(values.data(), values.size(), parc::ScalarType::f64, op);
    double factorial = 1;
    for (int r = 1; r <= size; ++r) factorial *= r;
    switch (op) {
      case parc::ReduceOp::sum:
        EXPECT_EQ(values[0], expected_sum + size);
        EXPECT_EQ(values[1], -expected_sum);
        break;
      case parc::ReduceOp::prod:
        EXPECT_EQ(values[0], factorial) << parc::reduce_op_name(op);
        break;
      case parc::ReduceOp::min:
        EXPECT_EQ(values[0], 1.0);
        EXPECT_EQ(values[1], -(size - 1.0));
        break;
      case parc::ReduceOp::max:
        EXPECT_EQ(values[0], size);
        EXPECT_EQ(values[1], 0.0);
        break;
    }
  }
  std::int32_t ints[3] = {rank, -rank, 7};
  region.allreduce(ints, 3, parc::ScalarType::i32, parc::ReduceOp::min);
  EXPECT_EQ(ints[0], 0);
  EXPECT_EQ(ints[1], -(size - 1));
  EXPECT_EQ(ints[2], 7);
  std::uint8_t small[2] = {static_cast<std::uint8_t>(rank), 200};
  region.reduce(small, 2, parc::ScalarType::u8, parc::ReduceOp::max, root);
  EXPECT_EQ(small[0], rank == root ? size - 1 : rank);
  EXPECT_EQ(small[1], 200);
  std::int64_t big = 1'000'000'000'000LL + rank;
  region.reduce(&big, 1, parc::ScalarType::i64, parc::ReduceOp::sum, 0);
  EXPECT_EQ(big, rank == 0 ? 1'000'000'000'000LL * size + size * (size - 1) / 2
                           : 1'000'000'000'000LL + rank);
  region.allreduce(nullptr, 0, parc::ScalarType::f32,
                   parc::ReduceOp::sum);  // nothing to do, still meets
}

}  // namespace parc::test
