// Proxy messages, the first byte picks which: a batch of reference changes
// (proxy_wire::decode_records), a request as the owner's progress thread decodes it
// (the request channel's reply tag, then operation, object serial, then the create /
// raw-read fields, or a C++ member call run by serve_proxy_call on a real object), or a
// reply as the caller reads it (the channel's code, a status, then a failure's ErrorInfo).

#include "fuzz.hpp"
#include "proxy_wire.hpp"     // proxies/src
#include "request_frame.hpp"  // comm/src
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

}  // namespace parc::fuzz

PARC_PROXY_TYPE(parc::fuzz::FuzzCounter, &parc::fuzz::FuzzCounter::add,
                &parc::fuzz::FuzzCounter::rename);

namespace parc::fuzz {

namespace {

const detail::ProxyType& counter_type() {
  return detail::proxy_type(std::type_index(typeid(FuzzCounter)));
}

Bytes framed_request(const Bytes& message) {
  const Bytes framed = request_frame::frame_request(77, message);
  Bytes bytes{1};
  append(bytes, framed.data(), framed.size());
  return bytes;
}

Bytes request(proxy_wire::Op op, std::uint64_t serial, const Bytes& rest) {
  Bytes message = proxy_wire::request_header(op, serial);
  append(message, rest.data(), rest.size());
  return framed_request(message);
}

Bytes reply(proxy_wire::Status status, const Bytes& payload) {
  const Bytes framed = request_frame::frame_reply(static_cast<std::uint8_t>(status), payload);
  Bytes bytes{2};
  append(bytes, framed.data(), framed.size());
  return bytes;
}

}  // namespace

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  using proxy_wire::Change;
  Bytes records{0};
  const Bytes encoded = proxy_wire::encode_records({{Change::export_token, 4, 9, 2},
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
  out.push_back(framed_request(proxy_wire::raw_request(4, {0, 10, 80})));
  Bytes create{static_cast<char>(FactoryKind::cpp)};
  ByteWriter(create).write(counter_type().key);
  out.push_back(request(proxy_wire::Op::create, 0, create));
  out.push_back(request(proxy_wire::Op::flush, 0, {}));

  Bytes failure;
  ByteWriter(failure).write(sample_error());
  out.push_back(reply(proxy_wire::Status::failed, failure));
  Bytes answer;
  ByteWriter(answer).write(42);
  out.push_back(reply(proxy_wire::Status::ok, answer));
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
        (void)proxy_wire::decode_records(bytes, 1);
        break;
      case 1: {
        ByteReader reader(bytes.data(), bytes.size());
        (void)request_frame::read_reply_tag(reader);
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
        std::uint8_t code = 0;
        Bytes payload;
        request_frame::read_reply(bytes, code, payload);
        const auto status = proxy_wire::reply_status(code, 1);
        if (status == proxy_wire::Status::failed) {
          ByteReader reader(payload.data(), payload.size());
          (void)detail::remote_failure(reader, 1, "FuzzCounter::add").describe();
        }
      }
    }
  } catch (const DecodeError&) {
  }
  return 0;
}
