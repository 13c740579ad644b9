// Serial mode's request channel: every rank is simulated in this process, and a request
// is handled on the caller's thread, still through its bytes.

#include <parc/comm/request_channel.hpp>

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

namespace parc {

namespace {

// Answered before request() returns: the handler replies on the caller's thread.
class LoopbackRequest final : public PendingRequest {
 public:
  LoopbackRequest(char* destination, std::uint64_t bytes)
      : destination_(destination), bytes_(bytes) {}
  bool ready() override { return answered_; }
  bool wait_until(std::chrono::steady_clock::time_point) override { return answered_; }
  std::uint8_t code() const override { return code_; }
  Bytes& payload() override { return payload_; }

 private:
  friend class LoopbackRequestChannel;
  char* destination_;
  std::uint64_t bytes_;
  bool answered_ = false;
  std::uint8_t code_ = 0;
  Bytes payload_;
};

class LoopbackRequestChannel final : public RequestChannel {
 public:
  explicit LoopbackRequestChannel(int ranks) : ranks_(ranks) {}

  int rank() const override { return 0; }
  int size() const override { return ranks_; }
  bool hosts(int) const override { return true; }
  std::string describe_ranks() const override {
    return "serially, ranks 0-" + std::to_string(ranks_ - 1) +
           " are simulated (PARC_SERIAL sets how many workers)";
  }
  const std::string& unavailable_reason() const override { return available_; }

  void start(RequestHandler& handler) override { handler_ = &handler; }

  std::unique_ptr<PendingRequest> request(int owner, Bytes message) override {
    return handle(owner, std::move(message), nullptr, 0);
  }
  std::unique_ptr<PendingRequest> read(int owner, Bytes message, char* destination,
                                       std::uint64_t bytes) override {
    return handle(owner, std::move(message), destination, bytes);
  }

  void reply(ReplyTo to, std::uint8_t code, Bytes payload) override {
    LoopbackRequest& waiting = caller(to);
    waiting.code_ = code;
    waiting.payload_ = std::move(payload);
    waiting.answered_ = true;
  }
  void reply_with_data(ReplyTo to, const char* data, std::uint64_t bytes,
                       std::shared_ptr<const void>) override {
    LoopbackRequest& waiting = caller(to);
    if (waiting.destination_ == nullptr || bytes != waiting.bytes_) {
      throw std::logic_error("parc: loopback data of " + std::to_string(bytes) +
                             " bytes for a read of " + std::to_string(waiting.bytes_));
    }
    std::memcpy(waiting.destination_, data, bytes);
    waiting.answered_ = true;
  }

  // Serially every rank is hosted here: a handler applies its records itself.
  void post_records(int owner, Bytes records) override {
    handler_->receive_records(owner, records);
  }
  std::uint64_t records_posted() const override { return 0; }
  void when_records_received(std::function<void()> answer) override { answer(); }

  void stop() override {}

 private:
  std::unique_ptr<PendingRequest> handle(int owner, Bytes message, char* destination,
                                         std::uint64_t bytes) {
    auto waiting = std::make_unique<LoopbackRequest>(destination, bytes);
    const ReplyTo requester{acting_rank(), register_caller(*waiting)};
    struct Unregister {
      LoopbackRequestChannel& channel;
      int tag;
      ~Unregister() {
        std::lock_guard lock(channel.mutex_);
        channel.callers_.erase(tag);
      }
    } unregister{*this, requester.tag};
    ByteReader reader(message.data(), message.size());
    handler_->serve_request(owner, requester, reader);
    return waiting;
  }

  int register_caller(LoopbackRequest& waiting) {
    std::lock_guard lock(mutex_);
    const int tag = ++next_tag_;
    callers_.emplace(tag, &waiting);
    return tag;
  }

  LoopbackRequest& caller(ReplyTo to) {
    std::lock_guard lock(mutex_);
    auto it = callers_.find(to.tag);
    if (it == callers_.end()) throw std::logic_error("parc: a loopback reply nobody waits for");
    return *it->second;
  }

  int ranks_;
  const std::string available_;
  RequestHandler* handler_ = nullptr;
  std::mutex mutex_;  // callers_: simulated ranks' threads request concurrently
  std::map<int, LoopbackRequest*> callers_;
  int next_tag_ = 0;
};

}  // namespace

std::unique_ptr<RequestChannel> make_loopback_request_channel(int ranks) {
  return std::make_unique<LoopbackRequestChannel>(ranks);
}

}  // namespace parc
