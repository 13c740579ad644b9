#pragma once
// What every fuzz target provides: libFuzzer's entry point, which feeds arbitrary bytes to
// one family of parc's decoders and lets through only the exceptions those decoders
// document (DecodeError, and a few named per target), and seeds(): genuine messages made
// with parc's own encoders, written to fuzz/corpus/<target>/ by `<target>_replay
// --write-seeds DIR`.

#include <parc/comm/archive.hpp>
#include <parc/comm/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace parc::fuzz {

std::vector<Bytes> seeds();

inline ByteReader reader_of(const std::uint8_t* data, std::size_t size) {
  return ByteReader(reinterpret_cast<const char*>(data), size);
}

// The frame of `kind` around `body`, as an endpoint sends it.
inline Bytes frame_of(MessageKind kind, const Bytes& body) {
  Bytes frame = begin_frame();
  frame.insert(frame.end(), body.begin(), body.end());
  finish_frame(frame, kind);
  return frame;
}

}  // namespace parc::fuzz
