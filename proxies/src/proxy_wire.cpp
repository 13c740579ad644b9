#include "proxy_wire.hpp"

#include <parc/exceptions/errors.hpp>

#include <string>

namespace parc::proxy_wire {

Bytes request_header(Op op, std::uint64_t serial) {
  Bytes bytes;
  bytes.push_back(static_cast<char>(op));
  ByteWriter(bytes).write(serial);
  return bytes;
}

Request read_request(ByteReader& reader, int source) {
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

FactoryKind read_factory_kind(ByteReader& reader, int source) {
  const auto kind = reader.read<std::uint8_t>();
  if (kind > static_cast<std::uint8_t>(FactoryKind::python)) {
    throw DecodeError("parc: a proxy create request from rank " + std::to_string(source) +
                      " names unknown object kind " + std::to_string(kind));
  }
  return static_cast<FactoryKind>(kind);
}

Bytes raw_request(std::uint64_t serial, const RawRead& raw) {
  Bytes bytes = request_header(Op::raw, serial);
  ByteWriter writer(bytes);
  writer.write(raw.begin);
  writer.write(raw.end);
  writer.write(raw.bytes);
  return bytes;
}

RawRead read_raw_request(ByteReader& reader) {
  RawRead raw;
  raw.begin = reader.read<std::uint64_t>();
  raw.end = reader.read<std::uint64_t>();
  raw.bytes = reader.read<std::uint64_t>();
  return raw;
}

Status reply_status(std::uint8_t code, int owner) {
  if (code > static_cast<std::uint8_t>(Status::error)) {
    throw DecodeError("parc: a proxy reply from rank " + std::to_string(owner) +
                      " has unknown status " + std::to_string(code));
  }
  return static_cast<Status>(code);
}

Bytes number(std::uint64_t value) {
  Bytes bytes;
  ByteWriter(bytes).write(value);
  return bytes;
}

std::uint64_t read_number(ByteReader& reader) { return reader.read<std::uint64_t>(); }

Bytes encode_records(const std::vector<Record>& records) {
  Bytes bytes;
  ByteWriter writer(bytes);
  for (const auto& record : records) {
    writer.write(static_cast<std::uint8_t>(record.change));
    writer.write(record.serial);
    writer.write(record.token);
    writer.write(record.uses);
  }
  return bytes;
}

std::vector<Record> decode_records(const Bytes& bytes, int source) {
  constexpr std::size_t record_size = 1 + 8 + 8 + 4;
  if (bytes.size() % record_size != 0) {
    throw DecodeError("parc: a batch of reference changes from rank " + std::to_string(source) +
                      " has " + std::to_string(bytes.size()) + " bytes, not a multiple of " +
                      std::to_string(record_size));
  }
  std::vector<Record> records;
  records.reserve(bytes.size() / record_size);  // checked just above: no more than received
  ByteReader reader(bytes.data(), bytes.size());
  while (reader.remaining() > 0) {
    Record record;
    const auto change = reader.read<std::uint8_t>();
    if (change > static_cast<std::uint8_t>(Change::register_consume)) {
      throw DecodeError("parc: a reference change from rank " + std::to_string(source) +
                        " has unknown kind " + std::to_string(change));
    }
    record.change = static_cast<Change>(change);
    record.serial = reader.read<std::uint64_t>();
    record.token = reader.read<std::uint64_t>();
    record.uses = reader.read<std::uint32_t>();
    records.push_back(record);
  }
  return records;
}

}  // namespace parc::proxy_wire
