#pragma once
// The proxy service's messages over MPI (see proxy_mpi.cpp): a request is
//   i32 reply tag, u8 op, u64 object serial, then per op:
//     create: u8 factory kind, the factory's arguments    call: the member call
//     raw:    u64 begin row, u64 end row, u64 bytes        flush, count: nothing
// and a reply is u8 status, then the payload. Decoding needs no MPI (the fuzz targets
// call it); what it rejects is a DecodeError naming the sending rank.

#include <parc/comm/archive.hpp>
#include <parc/comm/proxy_service.hpp>

#include <cstdint>
#include <string>

namespace parc::proxy_wire {

enum class Op : std::uint8_t { create = 0, call = 1, raw = 2, flush = 3, count = 4 };
enum class Status : std::uint8_t { ok = 0, failed = 1, released = 2, error = 3 };

// The reply tag comes first, so that everything after it can be answered with an error.
inline int read_request_tag(ByteReader& reader) { return reader.read<std::int32_t>(); }

struct Request {
  Op op = Op::create;
  std::uint64_t serial = 0;
};

inline Request read_request(ByteReader& reader, int source) {
  Request request;
  const auto op = reader.read<std::uint8_t>();
  if (op > static_cast<std::uint8_t>(Op::count)) {
    throw DecodeError("parc: a proxy request from rank " + std::to_string(source) +
                      " has unknown operation " + std::to_string(op));
  }
  request.op = static_cast<Op>(op);
  request.serial = reader.read<std::uint64_t>();
  return request;
}

inline FactoryKind read_factory_kind(ByteReader& reader, int source) {
  const auto kind = reader.read<std::uint8_t>();
  if (kind > static_cast<std::uint8_t>(FactoryKind::python)) {
    throw DecodeError("parc: a proxy create request from rank " + std::to_string(source) +
                      " names unknown object kind " + std::to_string(kind));
  }
  return static_cast<FactoryKind>(kind);
}

struct RawRead {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t bytes = 0;
};

inline RawRead read_raw_request(ByteReader& reader) {
  RawRead raw;
  raw.begin = reader.read<std::uint64_t>();
  raw.end = reader.read<std::uint64_t>();
  raw.bytes = reader.read<std::uint64_t>();
  return raw;
}

// A reply's status byte, checked (an empty reply is an ok one with no payload).
inline Status reply_status(const Bytes& reply, int owner) {
  if (reply.empty()) return Status::ok;
  const auto status = static_cast<std::uint8_t>(reply[0]);
  if (status > static_cast<std::uint8_t>(Status::error)) {
    throw DecodeError("parc: a proxy reply from rank " + std::to_string(owner) +
                      " has unknown status " + std::to_string(status));
  }
  return static_cast<Status>(status);
}

}  // namespace parc::proxy_wire
