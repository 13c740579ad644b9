// C++ closures that the Python tests call through parc.cpp_closure.
#include <parc/parc.hpp>

#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpp_test {

double divide(double a, double b) {
  if (b == 0) throw std::invalid_argument("divide: b is zero");
  return a / b;
}
PARC_CLOSURE(divide);

std::string greet(std::string name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hello " + name + (i + 1 < times ? ", " : "");
  return out;
}
PARC_CLOSURE(greet);

std::vector<double> scale(std::vector<double> xs, double factor) {
  for (double& x : xs) x *= factor;
  return xs;
}
PARC_CLOSURE(scale);

std::int64_t total(std::vector<std::int64_t> xs) {
  return std::accumulate(xs.begin(), xs.end(), std::int64_t{0});
}
PARC_CLOSURE(total);

// An SPMD closure: every region rank contributes x * (rank + 1).
double weighted_sum(parc::SpmdContext& ctx, double x) {
  return ctx.allreduce(x * (ctx.rank() + 1), parc::sum);
}
PARC_CLOSURE(weighted_sum);

struct Checked : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void nested_failure(int code) {
  try {
    throw std::out_of_range("index " + std::to_string(code) + " out of range");
  } catch (...) {
    std::throw_with_nested(Checked("while checking " + std::to_string(code)));
  }
}
PARC_CLOSURE(nested_failure);

// Crashes the process (serial mode names the task that did).
int crash(int x) {
  if (x > 0) *static_cast<volatile int*>(nullptr) = x;
  return x;
}
PARC_CLOSURE(crash);

}  // namespace cpp_test
