#pragma once
// The proxy service's messages, on the request channel (request_channel.hpp), which frames
// them (over MPI: a reply tag in front of a request, a code in front of a reply). A request
// is
//   u8 op, u64 object serial, then per op:
//     create: u8 factory kind, the factory's arguments    call: the member call
//     raw:    u64 begin row, u64 end row, u64 bytes        flush, count: nothing
// and a reply's code is a Status, then the payload:
//     create: u64 serial, the object's describe()         call: the language's reply bytes
//     flush:  u64 records messages posted in all          count: u64 objects kept
//     failed: the language's failure                       error: a message
// A records message is a batch of reference changes: u8 change, u64 serial, u64 token,
// u32 uses per record. Decoding needs no MPI (the fuzz targets call it); what it rejects is
// a DecodeError naming the sending rank.

#include <parc/comm/archive.hpp>
#include <parc/proxies/proxy_service.hpp>

#include <cstdint>
#include <vector>

namespace parc::proxy_wire {

enum class Op : std::uint8_t { create = 0, call = 1, raw = 2, flush = 3, count = 4 };
enum class Status : std::uint8_t { ok = 0, failed = 1, released = 2, error = 3 };

// A request's first fields; the caller appends the op's own.
Bytes request_header(Op op, std::uint64_t serial);

struct Request {
  Op op = Op::create;
  std::uint64_t serial = 0;
};
Request read_request(ByteReader& reader, int source);
FactoryKind read_factory_kind(ByteReader& reader, int source);

struct RawRead {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t bytes = 0;
};
Bytes raw_request(std::uint64_t serial, const RawRead& raw);
RawRead read_raw_request(ByteReader& reader);

// A reply's code, checked.
Status reply_status(std::uint8_t code, int owner);

// A u64 payload (create's serial, flush, count).
Bytes number(std::uint64_t value);
std::uint64_t read_number(ByteReader& reader);

// Reference changes, sent by a holder's rank to the owner's (see proxy_service.hpp).
enum class Change : std::uint8_t {
  deregister = 0,
  export_token = 1,
  consume = 2,
  register_consume = 3,
};
struct Record {
  Change change = Change::deregister;
  std::uint64_t serial = 0;
  std::uint64_t token = 0;
  std::uint32_t uses = 0;
};
Bytes encode_records(const std::vector<Record>& records);
// Rejects an unknown change or a cut record.
std::vector<Record> decode_records(const Bytes& bytes, int source);

}  // namespace parc::proxy_wire
