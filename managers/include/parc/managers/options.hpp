#pragma once

#include <parc/exceptions/parallel_exception.hpp>
#include <parc/exceptions/policy.hpp>

#include <chrono>
#include <functional>
#include <vector>

namespace parc {

// Which failures a retry is for; see parc::retry_on<E...>().
using RetryFilter = std::function<bool(const TaskError&)>;

struct FarmOptions {
  Policy policy = Policy::fail_fast;
  int retries = 0;                           // extra attempts of a failed task
  RetryFilter retry_on;                      // empty: retry every failure
  std::chrono::duration<double> timeout{0};  // per task; zero means none
  std::vector<int> ranks;                    // the workers it may use; empty: all
  // Several tasks per message, sized from their measured run time. Off: one task per
  // message, so each result comes back as soon as it is done (a map with a deadline).
  bool batching = true;
  // An ordered operation (a map): fail_fast cancels only the tasks submitted after the
  // one that failed; those before it still run (their results come first).
  bool ordered = false;
  // One operation fed as results come back (Python's map and submit_batch): once
  // fail_fast has cancelled it, tasks submitted to it later are its later inputs, and are
  // cancelled at once. Off (a C++ TaskFarm): a later submit starts the next generation.
  bool stop_after_failure = false;
};

namespace detail {
template <class E>
bool rethrows_as(const TaskError& error) {
  try {
    error.rethrow();
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}
}  // namespace detail

// A filter matching failures rebuilt as one of Es (or derived from one of them).
template <class... Es>
RetryFilter retry_on() {
  return [](const TaskError& error) { return (detail::rethrows_as<Es>(error) || ...); };
}

}  // namespace parc
