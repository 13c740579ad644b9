#pragma once
// The region control messages, encoder and decoder together: a region's ranks send them to
// each other (MpiRegion), the manager sends region_cancel (Scheduler), and the worker's
// control channel decodes both. Bodies only: the frame header is the endpoint's. None
// needs MPI: the fuzz targets decode arbitrary bytes with them.

#include <parc/comm/archive.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace parc::detail {

// region_cancel (any -> worker): release this rank from region `region`; `reason` becomes
// its CancelledError.
struct RegionCancel {
  std::uint64_t region = 0;
  std::string reason;
};
Bytes write_region_cancel(const RegionCancel& cancel);
RegionCancel read_region_cancel(ByteReader& body);

// region_done (worker -> worker): region rank `region_rank` returned after `collectives`
// collectives, having sent the receiver `sends[tag]` messages per tag.
struct RegionDone {
  std::uint64_t region = 0;
  std::int32_t region_rank = 0;
  std::uint64_t collectives = 0;
  std::map<int, std::uint64_t> sends;
};
Bytes write_region_done(const RegionDone& done);
RegionDone read_region_done(ByteReader& body);

}  // namespace parc::detail
