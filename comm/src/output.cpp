#include <parc/comm/log.hpp>
#include <parc/comm/output.hpp>
#include <parc/exceptions/errors.hpp>

#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <streambuf>
#include <string>
#include <string_view>
#include <thread>

namespace parc::output {

namespace {

// A thread has text without its newline in some sink: end_task has work to do.
thread_local bool has_partial = false;

class LineSink {
 public:
  LineSink(int fd, bool prefix, std::function<int()>* rank_now)
      : fd_(fd), prefix_(prefix), rank_now_(rank_now) {}

  void write(std::string_view text) {
    std::lock_guard lock(mutex_);
    std::string& pending = pending_[std::this_thread::get_id()];
    pending.append(text);
    const auto end = pending.rfind('\n');
    if (end != std::string::npos) {
      emit(std::string_view(pending).substr(0, end + 1));
      pending.erase(0, end + 1);
    }
    if (pending.empty()) {
      pending_.erase(std::this_thread::get_id());
    } else {
      has_partial = true;
    }
  }

  // The calling thread's partial line, or every thread's (at exit).
  void end(bool every_thread) {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (!every_thread && it->first != std::this_thread::get_id()) {
        ++it;
        continue;
      }
      if (!it->second.empty()) {
        it->second.push_back('\n');
        emit(it->second);
      }
      it = pending_.erase(it);
    }
  }

 private:
  // Whole lines, in batches of at most PIPE_BUF bytes (a longer line goes alone).
  void emit(std::string_view lines) {
    std::string tag;
    if (prefix_) tag = "[rank " + std::to_string((*rank_now_)()) + "] ";
    std::string batch;
    while (!lines.empty()) {
      const auto end = lines.find('\n');
      const std::string_view line = lines.substr(0, end + 1);
      lines.remove_prefix(line.size());
      if (!batch.empty() && batch.size() + tag.size() + line.size() > PIPE_BUF) {
        write_all(batch);
        batch.clear();
      }
      batch.append(tag).append(line);
    }
    write_all(batch);
  }

  void write_all(std::string_view data) const {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nobody reads it any more: drop, as a closed pipe would
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  const int fd_;
  const bool prefix_;
  std::function<int()>* rank_now_;
  std::mutex mutex_;
  std::map<std::thread::id, std::string> pending_;
};

// std::cout & co: unbuffered, every insertion goes to the sink on the inserting thread.
class SinkBuf : public std::streambuf {
 public:
  explicit SinkBuf(LineSink& sink) : sink_(sink) {}

 protected:
  std::streamsize xsputn(const char* text, std::streamsize count) override {
    sink_.write(std::string_view(text, static_cast<std::size_t>(count)));
    return count;
  }
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    sink_.write(std::string_view(&ch, 1));
    return c;
  }

 private:
  LineSink& sink_;
};

// C stdio: an unbuffered stream whose every printf arrives here whole, on its thread.
ssize_t cookie_write(void* cookie, const char* text, size_t size) {
  static_cast<LineSink*>(cookie)->write(std::string_view(text, size));
  return static_cast<ssize_t>(size);
}

struct Installed {
  std::function<int()> rank_now;
  LineSink out;
  LineSink err;
  SinkBuf out_buf{out};
  SinkBuf err_buf{err};
  Installed(bool prefix, std::function<int()> rank)
      : rank_now(std::move(rank)), out(1, prefix, &rank_now), err(2, prefix, &rank_now) {}
};
Installed* current = nullptr;  // never destroyed: output may come until the process ends

void end_everything() {
  std::fflush(nullptr);
  current->out.end(true);
  current->err.end(true);
}

}  // namespace

bool prefix_requested() {
  const char* value = std::getenv("PARC_OUTPUT");
  const std::string mode = value != nullptr ? value : "";
  if (mode.empty() || mode == "plain") return false;
  if (mode == "prefix") return true;
  throw StartupError("parc: PARC_OUTPUT=" + mode +
                     " is not an output mode; set it to prefix (each line of output starts "
                     "with its rank: [rank 2] ...), plain, or unset it");
}

void install(bool prefix, std::function<int()> rank_now) {
  if (current != nullptr) return;
  (void)log();  // parc's logger keeps the original stderr: its lines name their rank
  std::fflush(stdout);
  std::fflush(stderr);
  current = new Installed(prefix, std::move(rank_now));
  const cookie_io_functions_t functions{nullptr, cookie_write, nullptr, nullptr};
  for (auto [stream, sink] :
       {std::pair{&stdout, &current->out}, std::pair{&stderr, &current->err}}) {
    if (FILE* replaced = fopencookie(sink, "w", functions)) {
      setvbuf(replaced, nullptr, _IONBF, 0);
      *stream = replaced;
    }
  }
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::cout.rdbuf(&current->out_buf);
  std::cerr.rdbuf(&current->err_buf);
  std::clog.rdbuf(&current->err_buf);
  std::atexit(end_everything);
}

bool installed() { return current != nullptr; }

void end_task() {
  if (!has_partial || current == nullptr) return;
  has_partial = false;
  std::fflush(stdout);
  current->out.end(false);
  current->err.end(false);
}

}  // namespace parc::output
