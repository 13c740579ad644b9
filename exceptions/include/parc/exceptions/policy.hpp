#pragma once

namespace parc {

// How a manager reacts to a failed task; shared by every manager.
enum class Policy {
  fail_fast,    // cancel what has not started, raise as soon as the first failure is known
  collect_all,  // run everything, raise one ParallelException at the end
};

}  // namespace parc
