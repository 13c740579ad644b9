#include <parc/closures/call.hpp>
#include <parc/exceptions/errors.hpp>

#include <gtest/gtest.h>

#include <string>

namespace app {

int add(int a, int b) { return a + b; }
PARC_CLOSURE(add);

std::string greet(const std::string& name) { return "hello " + name; }
PARC_CLOSURE(greet);

inline constexpr auto scale = [](std::vector<double> xs, double factor) {
  for (double& x : xs) x *= factor;
  return xs;
};
PARC_CLOSURE(scale);

int never_declared(int x) { return x; }

}  // namespace app

namespace {

using parc::detail::ClosureRegistry;

struct Sealed : ::testing::Test {
  static void SetUpTestSuite() { ClosureRegistry::instance().seal(); }
};

template <class F, class... Args>
parc::Bytes call(const F& fn, Args&&... args) {
  parc::Bytes arguments, result;
  parc::ByteWriter out(arguments);
  parc::detail::write_arguments<F>(out, std::forward<Args>(args)...);
  parc::ByteReader in(arguments.data(), arguments.size());
  parc::ByteWriter result_out(result);
  parc::detail::run_closure(parc::closure_id(fn), in, result_out);
  return result;
}

template <class T>
T decode(const parc::Bytes& bytes) {
  parc::ByteReader in(bytes.data(), bytes.size());
  return in.read<T>();
}

TEST_F(Sealed, IdsFollowSortedNames) {
  const auto& registry = ClosureRegistry::instance();
  EXPECT_EQ(registry.entry(parc::closure_id(app::add)).name, "add");
  EXPECT_LT(parc::closure_id(app::add), parc::closure_id(app::greet));
  EXPECT_LT(parc::closure_id(app::greet), parc::closure_id(app::scale));
  EXPECT_NE(registry.table_text().find("add : int (int, int)"), std::string::npos);
}

TEST_F(Sealed, FunctionsRunThroughTheirEncodedArguments) {
  EXPECT_EQ(decode<int>(call(app::add, 2, 40)), 42);
  EXPECT_EQ(decode<std::string>(call(app::greet, "ranks")), "hello ranks");
}

TEST_F(Sealed, DeclaredLambdasRunToo) {
  auto out = decode<std::vector<double>>(call(app::scale, std::vector<double>{1, 2}, 3.0));
  EXPECT_EQ(out, (std::vector<double>{3, 6}));
}

TEST_F(Sealed, UndeclaredFunctionIsARuntimeErrorNamingIt) {
  try {
    (void)parc::closure_id(app::never_declared);
    FAIL() << "no error";
  } catch (const parc::UsageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("app::never_declared"), std::string::npos) << message;
    EXPECT_NE(message.find("PARC_CLOSURE"), std::string::npos) << message;
  }
}

TEST_F(Sealed, UnknownIdOrTrailingBytesAreErrors) {
  parc::Bytes none;
  parc::ByteReader in(none.data(), 0);
  parc::ByteWriter out(none);
  EXPECT_THROW(parc::detail::run_closure(9999, in, out), parc::UsageError);

  parc::Bytes arguments;
  parc::ByteWriter args(arguments);
  args.write(1);
  args.write(2);
  args.write(3);  // add takes two
  parc::ByteReader extra(arguments.data(), arguments.size());
  parc::Bytes result;
  parc::ByteWriter result_out(result);
  EXPECT_THROW(parc::detail::run_closure(parc::closure_id(app::add), extra, result_out),
               parc::DecodeError);
}

TEST_F(Sealed, TableHashChangesWithTheTable) {
  ClosureRegistry other;
  const auto empty_hash = other.table_hash();
  other.add(ClosureRegistry::instance().entry(parc::closure_id(app::add)));
  other.seal();
  EXPECT_NE(other.table_hash(), empty_hash);
  EXPECT_NE(other.table_hash(), ClosureRegistry::instance().table_hash());
}

TEST_F(Sealed, DeclaringAfterStartIsAnError) {
  EXPECT_THROW(parc::detail::declare_closure("late", app::never_declared), parc::UsageError);
}

}  // namespace

namespace {

struct Point {
  int x;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};

TEST(WireSignature, CodesFollowTheArchiveLayout) {
  using parc::detail::wire_signature;
  EXPECT_EQ((wire_signature<int(int, int)>()), "ii->i");
  EXPECT_EQ((wire_signature<std::string(const std::string&)>()), "s->s");
  EXPECT_EQ((wire_signature<std::vector<double>(std::vector<double>, double)>()), "[dd->[d");
  EXPECT_EQ((wire_signature<void(bool, std::int8_t, std::uint64_t, float)>()), "?bQf->v");
  // Values cereal encodes have no wire code: not callable from Python.
  EXPECT_EQ((wire_signature<Point(std::vector<bool>)>()), "!->!");
}

TEST(WireSignature, DeclaredClosuresCarryTheirs) {
  ClosureRegistry::instance().seal();
  const auto* add =
      ClosureRegistry::instance().find_function(reinterpret_cast<const void*>(&app::add));
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->wire, "ii->i");
  const auto* scale = ClosureRegistry::instance().find_type(typeid(app::scale));
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->wire, "[dd->[d");
}

}  // namespace
