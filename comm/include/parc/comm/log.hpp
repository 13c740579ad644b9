#pragma once
// spdlog logging; every line names the rank. PARC_LOG=debug|info|warn|error (default warn).

#include <spdlog/spdlog.h>

namespace parc {

spdlog::logger& log();

// Called once the rank is known; until then lines say "rank ?".
void set_log_rank(int rank);

}  // namespace parc
