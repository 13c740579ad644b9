// Serial mode's proxy service: the owners are simulated in this process, requests run on
// the caller's thread, and the bytes still go through the language's serializer.

#include <parc/comm/proxy_service.hpp>
#include <parc/comm/trace.hpp>
#include <parc/exceptions/errors.hpp>

#include <cstring>

namespace parc {

namespace {

class ReadyReply final : public PendingReply {
 public:
  explicit ReadyReply(Outcome outcome) : outcome_(std::move(outcome)) {}
  bool ready() override { return true; }
  bool wait_until(std::chrono::steady_clock::time_point) override { return true; }
  Outcome wait() override { return std::move(outcome_); }

 private:
  Outcome outcome_;
};

// A request that failed before it started; wait() says why, as it does over MPI.
class FailedReply final : public PendingReply {
 public:
  explicit FailedReply(std::string why) : why_(std::move(why)) {}
  bool ready() override { return true; }
  bool wait_until(std::chrono::steady_clock::time_point) override { return true; }
  Outcome wait() override { throw ProxyError(why_); }

 private:
  std::string why_;
};

class LoopbackProxyService final : public ProxyService {
 public:
  explicit LoopbackProxyService(int owners) : owners_(owners) {}

  int rank() const override { return 0; }
  int owners() const override { return owners_; }

  ObjectId create(int owner, FactoryKind kind, Bytes arguments, Outcome& reply) override {
    check_owner(owner);
    ByteReader reader(arguments.data(), arguments.size());
    auto object = build(kind, reader, reply);
    if (!object) return {};
    reply = Outcome{true, object->describe()};
    const ObjectId id{owner, keep(std::move(object), owner)};
    hold_new(id);
    return id;
  }

  std::unique_ptr<PendingReply> call(ObjectId id, Bytes request) override {
    check_owner(id.owner);
    auto object = find(id.serial);
    if (!object) return std::make_unique<FailedReply>(released_message(id));
    ByteReader reader(request.data(), request.size());
    trace::Span span(trace::Category::proxy, id.owner, "proxy call");
    span.set_peer(acting_rank());
    return std::make_unique<ReadyReply>(object->handle(reader));
  }

  std::unique_ptr<PendingReply> read_raw(ObjectId id, std::uint64_t begin, std::uint64_t end,
                                         char* destination, std::uint64_t bytes) override {
    check_owner(id.owner);
    auto object = find(id.serial);
    if (!object) return std::make_unique<FailedReply>(released_message(id));
    const auto view = object->raw_view();
    if (!view || end > view->rows || begin > end || (end - begin) * view->row_bytes != bytes) {
      throw ProxyError(
          "parc: the raw read does not match the object's memory (it changed "
          "shape or is no longer a contiguous array)");
    }
    std::memcpy(destination, view->data + begin * view->row_bytes, bytes);
    return std::make_unique<ReadyReply>(Outcome{});
  }

  std::uint64_t live_objects(int owner) override {
    check_owner(owner);
    return count_kept(owner);
  }

  void stop() override {
    stopped_ = true;
    take_all_objects();
  }

 protected:
  bool keeps(int) const override { return true; }

 private:
  void check_owner(int owner) const {
    if (stopped_) throw UsageError(stopped_message);
    if (owner < 0 || owner >= owners_) {
      throw UsageError("parc: owner rank " + std::to_string(owner) +
                       " does not exist: serially, ranks 0-" + std::to_string(owners_ - 1) +
                       " are simulated (PARC_SERIAL sets how many workers)");
    }
  }

  int owners_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<ProxyService> make_loopback_proxy_service(int owners) {
  return std::make_unique<LoopbackProxyService>(owners);
}

}  // namespace parc
