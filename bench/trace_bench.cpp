// The cost of one PARC_TRACE hook (a trace::Span around nothing), off and on:
//
//   trace_bench [spans=20000000]
//
// Prints "trace_span_off_ns X" and "trace_span_on_ns Y": nanoseconds per span, the best of
// 5 trials. Off is the cost every run pays; on includes two clock reads and the append.
#include <parc/comm/trace.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double ns_per_span(long spans) {
  double best = 1e18;
  for (int trial = 0; trial < 5; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < spans; ++i) {
      parc::trace::Span span(parc::trace::Category::task, 1, "noop", static_cast<std::uint64_t>(i));
      span.set_farm(1);
      asm volatile("" ::: "memory");  // keep the loop
    }
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, ns / static_cast<double>(spans));
    if (parc::trace::enabled) (void)parc::trace::take_encoded(), parc::trace::start("unused");
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const long spans = argc > 1 ? std::atol(argv[1]) : 20000000;
  std::printf("trace_span_off_ns %.2f\n", ns_per_span(spans));
  parc::trace::start("unused");  // never written: only the recording is measured
  std::printf("trace_span_on_ns %.2f\n", ns_per_span(spans / 20));
  parc::trace::stop();
}
