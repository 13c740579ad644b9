#pragma once
// Whole-line stdout and stderr for C and C++ code, optionally prefixed with the rank.
//
// mpiexec merges the ranks' output as the bytes arrive, so a rank's block-buffered flush
// can end mid-line and another rank's text lands inside that line. Once installed,
// printf/puts/fwrite on stdout and stderr and std::cout/std::cerr/std::clog only ever
// write complete lines, each batch in one write() of at most PIPE_BUF bytes (atomic on a
// pipe). Text after a thread's last newline waits for its newline, the end of its task
// or the process's exit. Python's own writer (python/parc/_output.py) does the same for
// sys.stdout and sys.stderr.

#include <functional>

namespace parc::output {

// PARC_OUTPUT: "prefix" -> true; unset, empty or "plain" -> false; anything else throws
// StartupError saying what to set.
bool prefix_requested();

// Replaces `stdout` and `stderr` (C stdio) and the rdbufs of std::cout, std::cerr and
// std::clog. With `prefix`, every line starts with `[rank N] `, N from `rank_now` on the
// thread that ends the line (a task's rank: serially its simulated worker's). Once per
// process; parc's own log lines keep going to the original stderr.
void install(bool prefix, std::function<int()> rank_now);
bool installed();

// The calling thread's partial lines go out as lines of their own: a task's last line
// does not wait for the next task's text. Cheap when there are none.
void end_task();

}  // namespace parc::output
