#pragma once
// PARC_TRACE=file.json: a timeline of the run as a Chrome trace-event file (Perfetto,
// chrome://tracing), one track per rank. See docs/tracing.md.
//
// Off (the default), every hook is one branch on `enabled`: no clock read, no
// allocation. On, each event is appended to this process's list under a mutex (serially
// that list holds every simulated rank's events); when the run ends every rank's list
// goes to rank 0, which writes the file.

#include <parc/comm/archive.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parc::trace {

// What an event shows; its "cat" in the file.
enum class Category : std::uint8_t { task, region, proxy, schedule, message };

// Set at start-up before any other thread exists, cleared when the file is written.
inline bool enabled = false;

inline constexpr std::uint64_t no_id = ~std::uint64_t{0};
inline constexpr std::int64_t no_value = -1;
// Messages at least this large get an event of their own (smaller ones cost nothing).
inline constexpr std::uint64_t message_event_bytes = 64 * 1024;

struct Event {
  Category category = Category::task;
  std::int32_t rank = 0;      // the track: the rank (serially, the simulated rank) that did it
  std::int64_t start_ns = 0;  // since the common origin (the end of rank 0's start-up)
  std::int64_t duration_ns = 0;
  std::uint64_t id = no_id;       // the task or region id
  std::int64_t farm = no_value;   // the task's farm
  std::int64_t peer = no_value;   // the other rank of a message or proxy call
  std::int64_t bytes = no_value;  // a message's size, a batch's task count
  std::string name;
  std::string closure;  // the declared closure, when the name is the host language's
};

// The path PARC_TRACE names, or "" when unset. Throws StartupError when the file cannot
// be written (a directory that does not exist, no permission), so that a run does not
// lose its trace at the end.
std::string path_from_environment();
// Starts recording (clears what an earlier runtime of this process left).
void start(std::string path);
// Nanoseconds of the steady clock; events are stored relative to set_origin's value.
std::int64_t clock_ns();
// The common origin in this process's clock: the end of rank 0's start-up, moved by the
// offset between this host's clock and rank 0's.
void set_origin(std::int64_t clock_ns_at_origin);
std::int64_t origin_ns();
std::int64_t now_ns();  // since the origin

void record(Event event);
// The host language's name for the task running on this thread (a Python function's
// qualified name): the next task or region event of this thread takes it.
void name_running_task(std::string_view name);
// Names the tasks of a farm in the file: a pipeline's stage (rank 0, at its opening).
void label_farm(std::uint32_t farm, std::string label);

// This process's events, encoded for rank 0; and rank 0 writing every rank's. Stops
// recording. `simulated` ranks 1..n (serial mode) are named as such.
Bytes take_encoded();
void write_file(const std::vector<Bytes>& encoded_per_rank, int ranks, bool simulated);
// Stops recording without writing anything.
void stop();

// Times its scope as one event; constructing it when tracing is off reads no clock.
// `name` must outlive the span (a closure's registered name, a literal).
class Span {
 public:
  Span(Category category, int rank, std::string_view name, std::uint64_t id = no_id) {
    if (enabled) [[unlikely]]
      begin(category, rank, name, id);
  }
  ~Span() {
    if (start_ns_ >= 0) [[unlikely]]
      end();
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  void set_name(std::string_view name) { name_ = name; }
  void set_farm(std::uint32_t farm) { farm_ = farm; }
  void set_peer(int peer) { peer_ = peer; }
  void set_bytes(std::uint64_t bytes) { bytes_ = static_cast<std::int64_t>(bytes); }
  // Nothing worth showing happened after all.
  void drop() { start_ns_ = -1; }

 private:
  void begin(Category category, int rank, std::string_view name, std::uint64_t id);
  void end();

  std::int64_t start_ns_ = -1;
  Category category_ = Category::task;
  int rank_ = 0;
  std::string_view name_;
  std::uint64_t id_ = no_id;
  std::int64_t farm_ = no_value;
  std::int64_t peer_ = no_value;
  std::int64_t bytes_ = no_value;
};

}  // namespace parc::trace
