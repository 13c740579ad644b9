#include <parc/comm/detail/region_wire.hpp>
#include <parc/comm/frame.hpp>

namespace parc::detail {

Bytes write_region_cancel(const RegionCancel& cancel) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(cancel.region);
  out.write(cancel.reason);
  return frame;
}

RegionCancel read_region_cancel(ByteReader& body) {
  RegionCancel cancel;
  cancel.region = body.read<std::uint64_t>();
  cancel.reason = body.read<std::string>();
  return cancel;
}

Bytes write_region_done(const RegionDone& done) {
  Bytes frame = begin_frame();
  ByteWriter out(frame);
  out.write(done.region);
  out.write(done.region_rank);
  out.write(done.collectives);
  out.write(done.sends);
  return frame;
}

RegionDone read_region_done(ByteReader& body) {
  RegionDone done;
  done.region = body.read<std::uint64_t>();
  done.region_rank = body.read<std::int32_t>();
  done.collectives = body.read<std::uint64_t>();
  done.sends = body.read<std::map<int, std::uint64_t>>();
  return done;
}

}  // namespace parc::detail
