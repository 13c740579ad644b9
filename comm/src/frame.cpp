#include <parc/comm/frame.hpp>
#include <parc/exceptions/registry.hpp>

#include <cstring>
#include <string>

namespace parc {

void finish_frame(Bytes& frame, MessageKind kind, std::size_t tail_size) {
  FrameHeader header;
  header.kind = static_cast<std::uint16_t>(kind);
  header.body_size = frame.size() - sizeof(FrameHeader) + tail_size;
  std::memcpy(frame.data(), &header, sizeof header);
}

std::uint64_t announced_body_size(const Bytes& frame) {
  FrameHeader header;
  if (frame.size() < sizeof header) return 0;
  std::memcpy(&header, frame.data(), sizeof header);
  return header.body_size;
}

MessageKind check_frame(const Bytes& frame, int source) {
  const std::string peer = "from rank " + std::to_string(source);
  if (frame.size() < sizeof(FrameHeader)) {
    throw DecodeError("parc: a message " + peer + " is shorter than a frame header (" +
                      std::to_string(frame.size()) + " bytes)");
  }
  FrameHeader header;
  std::memcpy(&header, frame.data(), sizeof header);
  if (header.magic != FrameHeader::magic_value) {
    throw DecodeError("parc: a message " + peer + " is not a parc frame (bad magic)");
  }
  if (header.version != FrameHeader::current_version) {
    throw DecodeError("parc: a message " + peer + " uses wire version " +
                      std::to_string(header.version) + ", this build speaks " +
                      std::to_string(FrameHeader::current_version) +
                      ": run the same build on every rank");
  }
  if (header.body_size != frame.size() - sizeof(FrameHeader)) {
    throw DecodeError("parc: a message " + peer + " announces " + std::to_string(header.body_size) +
                      " body bytes but carries " +
                      std::to_string(frame.size() - sizeof(FrameHeader)));
  }
  if (header.kind < static_cast<std::uint16_t>(MessageKind::task_batch) ||
      header.kind > static_cast<std::uint16_t>(last_message_kind)) {
    throw DecodeError("parc: a message " + peer + " has unknown kind " +
                      std::to_string(header.kind));
  }
  return static_cast<MessageKind>(header.kind);
}

}  // namespace parc

// Rebuilt as itself when a manager reports it for a task.
PARC_REGISTER_EXCEPTION(parc::DecodeError);
