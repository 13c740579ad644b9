// check_frame: magic, version, kind and body size of every received message.

#include "fuzz.hpp"

namespace parc::fuzz {

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  const Bytes exit_code(sizeof(std::int32_t), 0);  // a shutdown's body
  out.push_back(frame_of(MessageKind::shutdown, exit_code));
  out.push_back(frame_of(MessageKind::task_batch, Bytes{}));
  out.push_back(frame_of(MessageKind::region_done, Bytes(24, 'x')));
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const parc::Bytes frame(data, data + size);
  try {
    const parc::MessageKind kind = parc::check_frame(frame, 3);
    const parc::Message message{3, kind, frame};
    (void)message.body().remaining();
  } catch (const parc::DecodeError&) {
  }
  return 0;
}
