// The control channel as a worker reads it (read_control): cancel, shutdown,
// region_cancel, region_done, and any other kind (rejected); and the steal channel
// (read_revoke, read_revoke_answer). The first two bytes are the
// frame's kind, the rest its body.

#include "fuzz.hpp"

#include <parc/managers/detail/wire.hpp>

#include <cstring>
#include <map>

namespace parc::fuzz {

namespace {

Bytes seed(MessageKind kind, const Bytes& body) {
  Bytes out(2);
  const auto value = static_cast<std::uint16_t>(kind);
  std::memcpy(out.data(), &value, sizeof value);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

std::vector<Bytes> seeds() {
  const auto body_of = [](const Bytes& frame) {
    return Bytes(frame.begin() + sizeof(FrameHeader), frame.end());
  };
  std::vector<Bytes> out;
  out.push_back(seed(MessageKind::cancel, body_of(detail::write_cancel(1, 4, 17))));
  out.push_back(seed(MessageKind::shutdown, body_of(detail::write_shutdown(3))));
  out.push_back(seed(
      MessageKind::region_cancel,
      body_of(detail::write_region_cancel({9, "region rank 1 raised std::runtime_error: boom"}))));
  out.push_back(seed(MessageKind::region_done,
                     body_of(detail::write_region_done({9, 2, 6, {{0, 3}, {1, 1}}}))));
  out.push_back(seed(MessageKind::revoke, body_of(detail::write_revoke({41, 3}))));
  out.push_back(seed(MessageKind::revoke_answer, body_of(detail::write_revoke_answer({41, true}))));
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::uint16_t kind = 0;
  std::memcpy(&kind, data, sizeof kind);
  parc::Bytes body(data + 2, data + size);
  parc::Message message;
  message.source = 0;
  message.frame = parc::fuzz::frame_of(static_cast<parc::MessageKind>(kind), body);
  try {
    message.kind = parc::check_frame(message.frame, 0);
    if (message.kind == parc::MessageKind::revoke) {
      (void)parc::detail::read_revoke(message);
    } else if (message.kind == parc::MessageKind::revoke_answer) {
      (void)parc::detail::read_revoke_answer(message);
    } else {
      (void)parc::detail::read_control(message);
    }
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
