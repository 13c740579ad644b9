#include <parc/comm/log.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace parc {

namespace {

spdlog::level::level_enum level_from_environment() {
  const char* value = std::getenv("PARC_LOG");
  if (value == nullptr || *value == '\0') return spdlog::level::warn;
  const std::string level = value;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn" || level == "warning") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "off") return spdlog::level::off;
  return spdlog::level::warn;
}

std::string pattern_for(const std::string& rank) {
  return "[%H:%M:%S.%e] [parc rank " + rank + "] [%l] %v";
}

std::shared_ptr<spdlog::logger> make_logger() {
  auto logger = std::make_shared<spdlog::logger>(
      "parc", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern(pattern_for("?"));
  logger->set_level(level_from_environment());
  const char* value = std::getenv("PARC_LOG");
  if (value != nullptr && *value != '\0' && logger->level() == spdlog::level::warn &&
      std::string(value) != "warn" && std::string(value) != "warning") {
    logger->warn("PARC_LOG={} is not a level; use debug, info, warn, error or off", value);
  }
  return logger;
}

}  // namespace

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = make_logger();
  return *logger;
}

void set_log_rank(int rank) { log().set_pattern(pattern_for(std::to_string(rank))); }

}  // namespace parc
