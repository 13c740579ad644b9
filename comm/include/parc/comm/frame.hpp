#pragma once
// Message framing: every message starts with a fixed header checked on receipt.

#include <parc/comm/archive.hpp>

#include <cstdint>

namespace parc {

enum class MessageKind : std::uint16_t {
  task_batch = 1,     // manager -> worker: tasks to run
  result_batch = 2,   // worker -> manager: one outcome per task of a batch
  cancel = 3,         // manager -> worker: drop unstarted tasks of a farm generation
  shutdown = 4,       // manager -> worker: leave the serve loop, with the exit code
  region_start = 5,   // manager -> worker: run an SPMD region's closure on this rank
  region_result = 6,  // worker -> manager: this rank's outcome of a region
  region_cancel = 7,  // any -> worker (control): release this rank from a region
  region_done = 8,    // worker -> worker (control): a rank of the region returned
};
inline constexpr auto last_message_kind = MessageKind::region_done;

// Traffic classes: each has its own duplicated communicator.
enum class Traffic : int { tasks = 0, control = 1 };
inline constexpr int traffic_class_count = 2;

struct FrameHeader {
  static constexpr std::uint32_t magic_value = 0x50415243;  // "PARC"
  static constexpr std::uint16_t current_version = 1;
  std::uint32_t magic = magic_value;
  std::uint16_t version = current_version;
  std::uint16_t kind = 0;
  std::uint64_t body_size = 0;
};
static_assert(sizeof(FrameHeader) == 16);

// A buffer with room for the header; append the body with a ByteWriter.
inline Bytes begin_frame() {
  Bytes frame;
  frame.reserve(256);
  frame.resize(sizeof(FrameHeader));
  return frame;
}

// Writes the header into a buffer made by begin_frame(); the body is the rest of `frame`
// followed by `tail_size` bytes the endpoint sends after it (see Endpoint::send).
void finish_frame(Bytes& frame, MessageKind kind, std::size_t tail_size = 0);

// The body size a received frame's header announces (unchecked: see check_frame).
std::uint64_t announced_body_size(const Bytes& frame);

struct Message {
  int source = -1;
  MessageKind kind{};
  Bytes frame;

  ByteReader body() const {
    return ByteReader(frame.data() + sizeof(FrameHeader), frame.size() - sizeof(FrameHeader));
  }
  // The body, its frame moved into shared ownership so that views of it may outlive the
  // message (see ByteReader::owner).
  ByteReader take_body() {
    auto shared = std::make_shared<const Bytes>(std::move(frame));
    return ByteReader(shared->data() + sizeof(FrameHeader), shared->size() - sizeof(FrameHeader),
                      shared);
  }
};

// Checks the header of a received frame; throws DecodeError naming `source`.
MessageKind check_frame(const Bytes& frame, int source);

}  // namespace parc
