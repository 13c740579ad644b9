#include <parc/comm/archive.hpp>
#include <parc/comm/log.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>

namespace parc::trace {

namespace {

struct Recorder {
  std::mutex mutex;
  std::deque<Event> events;  // appending never moves the events already there
  std::map<std::uint32_t, std::string> farm_labels;
  std::string path;
  std::atomic<std::int64_t> origin_ns{0};  // read by every hook, set once at start-up
};

Recorder& recorder() {
  static auto* instance = new Recorder;  // never destroyed: hooks may run during exit
  return *instance;
}

thread_local std::string running_task_name;

const char* category_name(Category category) {
  switch (category) {
    case Category::task:
      return "task";
    case Category::region:
      return "region";
    case Category::proxy:
      return "proxy";
    case Category::schedule:
      return "schedule";
    case Category::message:
      return "message";
  }
  return "other";
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

void append_microseconds(std::string& out, std::int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(ns) / 1000.0);
  out += text;
}

// Proxy requests are served on a progress thread and a send is in flight while the rank
// goes on: their events overlap the rank's own, so they get tracks (threads) of their own
// within the rank's process in the file.
constexpr int proxy_thread = 1000000;
constexpr int message_thread = 2000000;

int thread_of(const Event& event) {
  switch (event.category) {
    case Category::proxy:
      return proxy_thread + event.rank;
    case Category::message:
      return message_thread + event.rank;
    default:
      return event.rank;
  }
}

std::string track_name(int rank, bool simulated) {
  if (rank == 0) return "rank 0 (manager)";
  return "rank " + std::to_string(rank) + (simulated ? " (simulated)" : "");
}

void append_metadata(std::string& out, const char* what, int rank, const std::string& value,
                     int thread = -1) {
  out += "{\"name\":\"";
  out += what;
  out += "\",\"ph\":\"M\",\"pid\":" + std::to_string(rank) +
         ",\"tid\":" + std::to_string(thread >= 0 ? thread : rank) + ",\"args\":{\"";
  out += std::string_view(what).ends_with("sort_index") ? "sort_index" : "name";
  out += "\":";
  out += value;
  out += "}}";
}

void append_event(std::string& out, const Event& event,
                  const std::map<std::uint32_t, std::string>& farm_labels) {
  const std::string* stage = nullptr;
  if (event.farm >= 0) {
    auto it = farm_labels.find(static_cast<std::uint32_t>(event.farm));
    if (it != farm_labels.end()) stage = &it->second;
  }
  out += "{\"name\":";
  append_json_string(out, event.name);
  out += ",\"cat\":\"";
  out += stage != nullptr ? "pipeline" : category_name(event.category);
  out += "\",\"ph\":\"X\",\"ts\":";
  append_microseconds(out, event.start_ns);
  out += ",\"dur\":";
  append_microseconds(out, event.duration_ns);
  out += ",\"pid\":" + std::to_string(event.rank) + ",\"tid\":" + std::to_string(thread_of(event));
  out += ",\"args\":{";
  bool first = true;
  const auto field = [&](const char* key) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += key;
    out += "\":";
  };
  if (event.id != no_id) {
    field(event.category == Category::region ? "region" : "task");
    out += std::to_string(event.id);
  }
  if (event.farm >= 0) {
    field("farm");
    out += std::to_string(event.farm);
  }
  if (stage != nullptr) {
    field("stage");
    append_json_string(out, *stage);
  }
  if (!event.closure.empty()) {
    field("closure");
    append_json_string(out, event.closure);
  }
  if (event.peer >= 0) {
    field(event.category == Category::proxy ? "caller" : "peer");
    out += std::to_string(event.peer);
  }
  if (event.bytes >= 0) {
    field(event.category == Category::message ? "bytes" : "tasks");
    out += std::to_string(event.bytes);
  }
  out += "}}";
}

}  // namespace

std::string path_from_environment() {
  const char* value = std::getenv("PARC_TRACE");
  if (value == nullptr || *value == '\0') return {};
  const std::string path = value;
  const auto slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const auto fail = [&](const std::string& why) {
    throw StartupError("parc: PARC_TRACE=" + path + ": " + why +
                       "; set it to a file in an existing, writable directory, or unset it");
  };
  struct stat info {};
  if (::stat(folder.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    fail("the directory " + folder + " does not exist");
  }
  if (::access(folder.c_str(), W_OK) != 0) fail("the directory " + folder + " is not writable");
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) fail("that is a directory, not a file");
    if (::access(path.c_str(), W_OK) != 0) fail("the file is not writable");
  }
  return path;
}

void start(std::string path) {
  Recorder& r = recorder();
  {
    std::lock_guard lock(r.mutex);
    r.events.clear();
    r.farm_labels.clear();
    r.path = std::move(path);
    r.origin_ns.store(clock_ns(), std::memory_order_relaxed);
  }
  enabled = true;
}

std::int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void set_origin(std::int64_t clock_ns_at_origin) {
  recorder().origin_ns.store(clock_ns_at_origin, std::memory_order_relaxed);
}

std::int64_t origin_ns() { return recorder().origin_ns.load(std::memory_order_relaxed); }

std::int64_t now_ns() { return clock_ns() - origin_ns(); }

void record(Event event) {
  if (!enabled) return;  // a send completing after the trace was taken
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  r.events.push_back(std::move(event));
}

void name_running_task(std::string_view name) {
  if (enabled) running_task_name = name;
}

void label_farm(std::uint32_t farm, std::string label) {
  if (!enabled) return;
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  r.farm_labels[farm] = std::move(label);
}

void Span::begin(Category category, int rank, std::string_view name, std::uint64_t id) {
  category_ = category;
  rank_ = rank;
  name_ = name;
  id_ = id;
  start_ns_ = now_ns();
  if (category == Category::task || category == Category::region) running_task_name.clear();
}

void Span::end() {
  Event event;
  event.category = category_;
  event.rank = rank_;
  event.start_ns = start_ns_;
  event.duration_ns = now_ns() - start_ns_;
  event.id = id_;
  event.farm = farm_;
  event.peer = peer_;
  event.bytes = bytes_;
  if ((category_ == Category::task || category_ == Category::region) &&
      !running_task_name.empty()) {
    event.name = std::move(running_task_name);
    running_task_name.clear();
    event.closure = name_;
  } else {
    event.name = name_;
  }
  record(std::move(event));
}

Bytes take_encoded() {
  Recorder& r = recorder();
  std::deque<Event> events;
  {
    std::lock_guard lock(r.mutex);
    events.swap(r.events);
  }
  enabled = false;
  Bytes bytes;
  ByteWriter out(bytes);
  out.write(static_cast<std::uint64_t>(events.size()));
  for (const Event& e : events) {
    out.write(e.category);
    out.write(e.rank);
    out.write(e.start_ns);
    out.write(e.duration_ns);
    out.write(e.id);
    out.write(e.farm);
    out.write(e.peer);
    out.write(e.bytes);
    out.write(e.name);
    out.write(e.closure);
  }
  return bytes;
}

void write_file(const std::vector<Bytes>& encoded_per_rank, int ranks, bool simulated) {
  Recorder& r = recorder();
  std::string out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"parc\",\"ranks\":" +
                    std::to_string(ranks) + ",\"mode\":\"" + (simulated ? "serial" : "mpi") +
                    "\"},\"traceEvents\":[\n";
  for (int rank = 0; rank < ranks; ++rank) {
    append_metadata(out, "process_name", rank, "\"" + track_name(rank, simulated) + "\"");
    out += ",\n";
    append_metadata(out, "process_sort_index", rank, std::to_string(rank));
    out += ",\n";
    append_metadata(out, "thread_name", rank, "\"" + track_name(rank, simulated) + "\"");
    out += ",\n";
  }
  std::size_t count = 0;
  std::map<int, std::pair<int, std::string>> side_threads;  // tid -> rank, name
  for (const Bytes& encoded : encoded_per_rank) {
    ByteReader in(encoded.data(), encoded.size());
    const auto events = in.read<std::uint64_t>();
    for (std::uint64_t i = 0; i < events; ++i) {
      Event e;
      e.category = in.read<Category>();
      e.rank = in.read<std::int32_t>();
      e.start_ns = in.read<std::int64_t>();
      e.duration_ns = in.read<std::int64_t>();
      e.id = in.read<std::uint64_t>();
      e.farm = in.read<std::int64_t>();
      e.peer = in.read<std::int64_t>();
      e.bytes = in.read<std::int64_t>();
      e.name = in.read<std::string>();
      e.closure = in.read<std::string>();
      if (count++ > 0) out += ",\n";
      append_event(out, e, r.farm_labels);
      if (const int thread = thread_of(e); thread != e.rank && !side_threads.count(thread)) {
        side_threads[thread] = {
            e.rank, e.category == Category::proxy ? "proxy requests served" : "large messages"};
      }
    }
  }
  for (const auto& [thread, what] : side_threads) {
    out += ",\n";
    append_metadata(out, "thread_name", what.first, "\"" + what.second + "\"", thread);
  }
  if (count == 0 && side_threads.empty() && out.ends_with(",\n")) out.resize(out.size() - 2);
  out += "\n]}\n";
  std::FILE* file = std::fopen(r.path.c_str(), "w");
  bool written = file != nullptr && std::fwrite(out.data(), 1, out.size(), file) == out.size();
  if (file != nullptr) written = std::fclose(file) == 0 && written;
  if (!written) {
    log().error("could not write the trace to PARC_TRACE={}", r.path);
    return;
  }
  log().debug("trace of {} events written to {}", count, r.path);
}

void stop() { enabled = false; }

}  // namespace parc::trace
