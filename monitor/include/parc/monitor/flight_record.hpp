#pragma once
// The flight record: what this rank is doing right now (running main, task 17 of
// `simulate`, serving a proxy request from rank 1), kept in memory shared with a small
// watcher process forked before MPI starts. MPICH ends the whole job when one rank dies,
// so no surviving rank can say what was lost; the dying rank's watcher can. When its
// rank ends without finalizing (killed, crashed, `_exit`), the watcher prints
//
//   parc: rank 2 (host vm, pid 6002) died while running task 17: simulate(...)
//
// on stderr. Only the watcher of the first rank to die speaks: the ranks the launcher
// kills afterwards are not what went wrong. On a node the watchers follow each other's
// ranks; across nodes the one that speaks first tells the others (a UDP "claim"). Under
// Slurm it then asks srun to end the step, which would otherwise leave the other nodes'
// ranks running. A rank ended by SIGINT or SIGTERM (Ctrl-C, scancel) is reported once,
// by rank 0's watcher, as interrupted or cancelled.
//
// Every note is a few stores into that memory, cheap enough for each task. Without a
// launcher (serial mode, a singleton) there is no watcher and the notes go nowhere.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parc::flight {

// Forks the watcher when the process was started by an MPI launcher (PMI_RANK or
// PMIX_RANK set), and notes SIGINT, SIGTERM and SIGHUP before they end the rank. Call
// before MPI_Init: forking after it would copy MPI's state.
void start_watcher();
bool watching();

void note_identity(int rank, std::string_view host, std::int64_t pid);
// This rank's watcher (0: none).
std::int64_t watcher_pid();
// The pids of the other ranks on this node, and of their watchers: the watchers tell
// which rank died first, and an aborting rank tells theirs to stay silent.
void note_neighbours(const std::vector<std::int64_t>& pids,
                     const std::vector<std::int64_t>& watchers);
// Where this rank's watcher hears claims (opaque bytes; empty: no watcher), and every
// rank's, in rank order, with the job's id: the watchers of other nodes.
std::string claim_address();
void note_claim_addresses(std::uint64_t job, const std::vector<std::string>& addresses);
// What the rank does when it is not running a task: "running main", "waiting for work".
void note_activity(std::string_view activity);
// A task starts; `closure` is its declared name.
void note_task(std::uint64_t task_id, std::string_view closure);
// The host language's account of the running task's call ("simulate(...)").
void note_task_call(std::string_view call);
// The task has returned: the rank is back to its activity.
void note_task_done();
// The progress thread serves a proxy request from `requester` (-1: none); returns the
// requester noted before (requests nest when a method calls a proxy).
int note_serving(int requester);

// Serial mode (no watcher): a crash in a task (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
// first prints `parc: rank 2 (host vm, pid 6002) crashed (signal 11) while running task
// 17: simulate(...)`, then runs the handlers installed before. Call after MPI starts (UCX
// installs its own) and before the host language adds its own (Python's faulthandler).
void report_crashes();

// The rank ends the way parc meant: the watcher stays silent.
void note_finalized();
// The rank gives up on an MPI_Finalize that does not return, its work done: silent too.
void note_finalize_abandoned();
// The rank ends the job on purpose (MPI_Abort) after logging why: the watcher stays
// silent, and so do this node's other watchers (signalled: the launcher then kills the
// ranks in any order).
void note_aborting();

// Waits, at most 2 s, until the launcher has read what this process wrote to stderr:
// hydra drops what is still in a rank's pipe when it tears the job down, so the line
// saying why the job ends would be lost now and then.
void wait_until_stderr_is_read();

}  // namespace parc::flight
