// PARC_TRACE end to end: runs trace_probe (PARC_TRACE_PROBE) under a launch
// (PARC_TRACE_LAUNCH: "", "env PARC_SERIAL=3", "mpiexec.mpich -n 2", ...) and checks the
// file it writes: one event per task with its closure and id, one track per rank, the
// region's, pipeline's and proxy's events, sane times. One event per line (trace.cpp
// writes it so), so a few regular expressions read it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

struct ProbeRun {
  int exit_code = -1;
  std::string output;
};

// `env ... <launch> <probe>` in `folder`, stdout and stderr together.
ProbeRun run_probe(const fs::path& folder, const std::string& env) {
  const std::string command = "cd '" + folder.string() + "' && timeout -k 10 100 env " + env + " " +
                              environment("PARC_TRACE_LAUNCH") + " '" +
                              environment("PARC_TRACE_PROBE") + "' 2>&1";
  ProbeRun run;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char chunk[4096];
  while (std::fgets(chunk, sizeof chunk, pipe) != nullptr) run.output += chunk;
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

struct Event {
  std::string ph, name, cat, stage;
  int pid = -1, tid = -1;
  double ts = 0, dur = 0;
  std::optional<long long> task, region, peer;
};

std::optional<std::string> field(const std::string& line, const std::string& key,
                                 const char* value_pattern) {
  std::smatch match;
  if (!std::regex_search(line, match, std::regex("\"" + key + "\":" + value_pattern))) {
    return std::nullopt;
  }
  return match[1].str();
}

std::vector<Event> read_events(const fs::path& file) {
  std::vector<Event> events;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto ph = field(line, "ph", "\"(\\w)\"");
    if (!ph) continue;
    Event e;
    e.ph = *ph;
    e.name = field(line, "name", "\"([^\"]*)\"").value_or("");
    e.cat = field(line, "cat", "\"(\\w+)\"").value_or("");
    e.stage = field(line, "stage", "\"([^\"]*)\"").value_or("");
    e.pid = std::stoi(field(line, "pid", "(-?\\d+)").value_or("-1"));
    e.tid = std::stoi(field(line, "tid", "(-?\\d+)").value_or("-1"));
    e.ts = std::stod(field(line, "ts", "(-?[0-9.]+)").value_or("0"));
    e.dur = std::stod(field(line, "dur", "(-?[0-9.]+)").value_or("0"));
    if (auto v = field(line, "task", "(\\d+)")) e.task = std::stoll(*v);
    if (auto v = field(line, "region", "(\\d+)")) e.region = std::stoll(*v);
    if (auto v = field(line, "peer", "(\\d+)")) e.peer = std::stoll(*v);
    events.push_back(e);
  }
  return events;
}

class Trace : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("parc_trace_test_" + std::to_string(getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }

  fs::path folder_;
};

TEST(TraceSetup, ProbeAndTracksAreGiven) {
  ASSERT_FALSE(environment("PARC_TRACE_PROBE").empty()) << "set PARC_TRACE_PROBE";
  ASSERT_FALSE(environment("PARC_TRACE_TRACKS").empty()) << "set PARC_TRACE_TRACKS";
}

TEST_F(Trace, OneEventPerTaskOnTheTrackOfItsRank) {
  const ProbeRun run = run_probe(folder_, "PARC_TRACE=trace.json");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_NE(run.output.find("probe done"), std::string::npos) << run.output;
  const auto events = read_events(folder_ / "trace.json");
  ASSERT_FALSE(events.empty()) << "no events in " << (folder_ / "trace.json");
  const int tracks = std::stoi(environment("PARC_TRACE_TRACKS"));
  const bool mpi = environment("PARC_TRACE_LAUNCH").find("mpiexec") != std::string::npos;

  // A named track per rank: rank 0 manages, ranks 1..tracks-1 work.
  std::map<int, std::string> names;
  for (const auto& e : events) {
    if (e.ph == "M" && e.name == "process_name") names[e.pid] = e.name;
  }
  ASSERT_EQ(names.size(), static_cast<std::size_t>(tracks));
  for (int r = 0; r < tracks; ++r) EXPECT_TRUE(names.count(r)) << "no track for rank " << r;

  std::map<std::string, std::set<long long>> task_ids;  // closure -> its tasks' ids
  std::map<std::string, int> tasks, by_category;
  std::set<int> worker_tracks_used, region_tracks;
  std::set<std::string> stages;
  double end_of_run = 0;
  double first_dispatch = 1e18, first_task = 1e18, last_task_end = 0, last_results_end = 0;
  for (const auto& e : events) {
    if (e.ph != "X") continue;
    if (e.name == "dispatch") first_dispatch = std::min(first_dispatch, e.ts);
    if (e.name == "results") last_results_end = std::max(last_results_end, e.ts + e.dur);
    if (e.cat == "task") {
      first_task = std::min(first_task, e.ts);
      last_task_end = std::max(last_task_end, e.ts + e.dur);
    }
    ++by_category[e.cat];
    if (e.cat == "proxy" || e.cat == "message") {  // threads of their own in the rank
      EXPECT_NE(e.pid, e.tid);
    } else {
      EXPECT_EQ(e.pid, e.tid);
    }
    EXPECT_GE(e.pid, 0);
    EXPECT_LT(e.pid, tracks);
    EXPECT_GE(e.dur, 0.0) << e.name;
    EXPECT_GT(e.ts, -1e6) << e.name;  // since rank 0's start-up: nothing long before
    EXPECT_LT(e.ts, 120e6) << e.name;
    end_of_run = std::max(end_of_run, e.ts + e.dur);
    if (e.cat == "task" || e.cat == "pipeline") {
      EXPECT_GE(e.pid, 1) << "a task on the manager's track: " << e.name;
      ASSERT_TRUE(e.task.has_value()) << e.name;
      EXPECT_TRUE(task_ids[e.name].insert(*e.task).second) << "task " << *e.task << " twice";
      ++tasks[e.name];
      worker_tracks_used.insert(e.pid);
      if (e.name == "traced_square") {
        EXPECT_GE(e.dur, 290.0);  // it spins 300 us
      }
    }
    if (e.cat == "pipeline") stages.insert(e.stage);
    if (e.cat == "region") {
      EXPECT_EQ(e.name, "traced_region");
      EXPECT_TRUE(e.region.has_value());
      region_tracks.insert(e.pid);
    }
    if (e.cat == "schedule") {
      EXPECT_EQ(e.pid, 0) << "the manager schedules";
    }
    if (e.cat == "proxy") {
      EXPECT_EQ(e.pid, 1) << "the tally lives on rank 1";
    }
  }
  EXPECT_EQ(tasks["traced_square"], 24);
  EXPECT_EQ(tasks["traced_cube"], 9);
  EXPECT_EQ(tasks["traced_bytes"], 1);
  EXPECT_EQ(tasks["stage_spread"], 5);
  EXPECT_EQ(tasks["stage_sum"], 5);
  EXPECT_EQ(by_category["pipeline"], 10);
  EXPECT_EQ(stages, (std::set<std::string>{"1: stage_spread", "2: stage_sum"}));
  EXPECT_EQ(by_category["region"], tracks - 1);  // every worker ran the region
  EXPECT_EQ(region_tracks.size(), static_cast<std::size_t>(tracks - 1));
  EXPECT_EQ(by_category["proxy"], 3);
  EXPECT_GT(by_category["schedule"], 0);
  if (mpi) {  // the 256 KiB argument: sent by rank 0, received by a worker
    EXPECT_GE(by_category["message"], 2);
  }
  // One clock for every track: no task starts before the manager sent the first batch,
  // none ends after the manager took in the last results.
  EXPECT_LE(first_dispatch, first_task);
  EXPECT_LE(last_task_end, last_results_end);
  // 24 squares of 300 us: the run takes at least their share of each worker.
  EXPECT_GE(end_of_run, 24 * 300.0 / (tracks - 1));
}

TEST_F(Trace, NoFileWithoutPARC_TRACE) {
  const ProbeRun run = run_probe(folder_, "-u PARC_TRACE");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(fs::is_empty(folder_)) << "something was written in " << folder_;
}

TEST_F(Trace, ABadPathStopsTheRunAtStartUp) {
  const ProbeRun run = run_probe(folder_, "PARC_TRACE=no/such/folder/trace.json");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("PARC_TRACE=no/such/folder/trace.json: the directory no/such/folder/ "
                            "does not exist"),
            std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("probe done"), std::string::npos) << run.output;
}

}  // namespace
