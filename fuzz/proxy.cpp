// Proxy messages, the first byte picks which: a batch of reference changes
// (ProxyService::decode_records), a request as the owner's progress thread decodes it
// (reply tag, operation, object serial, then the create / raw-read fields, or a C++ member
// call run by serve_proxy_call on a real object), or a reply as the caller reads it
// (status, then a failure's ErrorInfo).

#include "fuzz.hpp"
#include "proxy_wire.hpp"
#include "sample_error.hpp"

#include <parc/managers/proxy.hpp>

#include <atomic>
#include <string>

namespace parc::fuzz {

struct FuzzCounter {
  int value = 0;
  std::string label;
  int add(int n) {
    return value = static_cast<int>(static_cast<unsigned>(value) + static_cast<unsigned>(n));
  }
  std::size_t rename(std::string name, std::vector<std::string> aliases) {
    label = std::move(name);
    return aliases.size();
  }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, label);
  }
};

// The reference-change codec, which ProxyService keeps to itself and its transports.
struct RecordCodec : ProxyService {
  using ProxyService::Change;
  using ProxyService::decode_records;
  using ProxyService::encode_records;
  using ProxyService::Record;
};

}  // namespace parc::fuzz

PARC_PROXY_TYPE(parc::fuzz::FuzzCounter, &parc::fuzz::FuzzCounter::add,
                &parc::fuzz::FuzzCounter::rename);

namespace parc::fuzz {

namespace {

const detail::ProxyType& counter_type() {
  return detail::proxy_type(std::type_index(typeid(FuzzCounter)));
}

Bytes request(proxy_wire::Op op, std::uint64_t serial, const Bytes& rest) {
  Bytes bytes{1};
  ByteWriter writer(bytes);
  writer.write(std::int32_t{77});
  writer.write(static_cast<std::uint8_t>(op));
  writer.write(serial);
  writer.write_bytes(rest.data(), rest.size());
  return bytes;
}

}  // namespace

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  using Change = RecordCodec::Change;
  Bytes records{0};
  const Bytes encoded = RecordCodec::encode_records({{Change::export_token, 4, 9, 2},
                                                     {Change::register_consume, 4, 9, 0},
                                                     {Change::deregister, 4, 0, 0}});
  records.insert(records.end(), encoded.begin(), encoded.end());
  out.push_back(std::move(records));

  Bytes add;  // a member call, as Proxy::invoke writes it
  ByteWriter(add).write(counter_type().key);
  ByteWriter(add).write(std::uint32_t{0});
  ByteWriter(add).write(5);
  out.push_back(request(proxy_wire::Op::call, 4, add));
  Bytes rename;
  ByteWriter(rename).write(counter_type().key);
  ByteWriter(rename).write(std::uint32_t{1});
  ByteWriter(rename).write(std::string("hits"));
  ByteWriter(rename).write(std::vector<std::string>{"h", "n"});
  out.push_back(request(proxy_wire::Op::call, 4, rename));
  Bytes resolve;
  ByteWriter(resolve).write(counter_type().key);
  ByteWriter(resolve).write(detail::resolve_index);
  out.push_back(request(proxy_wire::Op::call, 4, resolve));
  Bytes raw;
  ByteWriter(raw).write(std::uint64_t{0});
  ByteWriter(raw).write(std::uint64_t{10});
  ByteWriter(raw).write(std::uint64_t{80});
  out.push_back(request(proxy_wire::Op::raw, 4, raw));
  Bytes create{static_cast<char>(FactoryKind::cpp)};
  ByteWriter(create).write(counter_type().key);
  out.push_back(request(proxy_wire::Op::create, 0, create));
  out.push_back(request(proxy_wire::Op::flush, 0, {}));

  Bytes failed{2, static_cast<char>(proxy_wire::Status::failed)};
  ByteWriter(failed).write(sample_error());
  out.push_back(std::move(failed));
  Bytes ok{2, static_cast<char>(proxy_wire::Status::ok)};
  ByteWriter(ok).write(42);
  out.push_back(std::move(ok));
  return out;
}

}  // namespace parc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parc;
  if (size == 0) return 0;
  const Bytes bytes(data + 1, data + size);
  try {
    switch (data[0] % 3) {
      case 0:
        (void)fuzz::RecordCodec::decode_records(bytes, 1);
        break;
      case 1: {
        ByteReader reader(bytes.data(), bytes.size());
        (void)proxy_wire::read_request_tag(reader);
        const auto request = proxy_wire::read_request(reader, 1);
        if (request.op == proxy_wire::Op::create) {
          (void)proxy_wire::read_factory_kind(reader, 1);
        } else if (request.op == proxy_wire::Op::raw) {
          (void)proxy_wire::read_raw_request(reader);
        } else if (request.op == proxy_wire::Op::call) {
          fuzz::FuzzCounter counter;
          // Catches everything itself: a failure is encoded into the outcome.
          (void)detail::serve_proxy_call(fuzz::counter_type(), &counter, reader);
        }
        break;
      }
      default: {
        const auto status = proxy_wire::reply_status(bytes, 1);
        if (status == proxy_wire::Status::failed) {
          ByteReader reader(bytes.data() + 1, bytes.size() - 1);
          (void)detail::remote_failure(reader, 1, "FuzzCounter::add").describe();
        }
      }
    }
  } catch (const DecodeError&) {
  }
  return 0;
}
