#pragma once
// The request channel's framing over MPI (request_channel_mpi.cpp): a request is i32 reply
// tag, then the caller's message; a reply is u8 code, then the payload, and an empty reply
// reads as code 0 with no payload. Decoding needs no MPI (the fuzz targets call it).

#include <parc/comm/archive.hpp>

#include <cstdint>
#include <cstring>

namespace parc::request_frame {

inline Bytes frame_request(int tag, const Bytes& message) {
  Bytes framed(sizeof(std::int32_t));
  const auto tag32 = static_cast<std::int32_t>(tag);
  std::memcpy(framed.data(), &tag32, sizeof tag32);
  append(framed, message.data(), message.size());
  return framed;
}

// The reply tag comes first, so that everything after it can be answered.
inline int read_reply_tag(ByteReader& reader) { return reader.read<std::int32_t>(); }

inline Bytes frame_reply(std::uint8_t code, const Bytes& payload) {
  Bytes bytes;
  bytes.reserve(1 + payload.size());
  bytes.push_back(static_cast<char>(code));
  append(bytes, payload.data(), payload.size());
  return bytes;
}

inline void read_reply(const Bytes& bytes, std::uint8_t& code, Bytes& payload) {
  if (bytes.empty()) return;
  code = static_cast<std::uint8_t>(bytes[0]);
  payload.assign(bytes.begin() + 1, bytes.end());
}

}  // namespace parc::request_frame
