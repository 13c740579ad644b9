#include <parc/comm/endpoint.hpp>
#include <parc/comm/environment.hpp>
#include <parc/comm/log.hpp>
#include <parc/exceptions/errors.hpp>

#include <mpi.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <list>
#include <numeric>

namespace parc {

namespace {

const char* environment_value(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("parc: ") + what + " failed: " + std::string(text, length));
}

class MpiEndpoint : public Endpoint {
 public:
  MpiEndpoint(int rank, int size) : rank_(rank), size_(size) {
    for (auto& comm : comms_) check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  }

  ~MpiEndpoint() override {
    // Sends still in flight at shutdown go to ranks that no longer read them.
    for (auto& pending : pending_) MPI_Request_free(&pending.request);
    for (auto& comm : comms_) MPI_Comm_free(&comm);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(Traffic traffic, int dest, MessageKind kind, Bytes&& frame) override {
    finish_frame(frame, kind);
    pending_.push_back(PendingSend{std::move(frame), MPI_REQUEST_NULL});
    PendingSend& pending = pending_.back();
    check_mpi(MPI_Isend(pending.frame.data(), static_cast<int>(pending.frame.size()), MPI_BYTE,
                        dest, static_cast<int>(kind), comm(traffic), &pending.request),
              "MPI_Isend");
  }

  std::optional<Message> try_receive(Traffic traffic) override {
    int flag = 0;
    MPI_Message handle;
    MPI_Status status;
    check_mpi(MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm(traffic), &flag, &handle, &status),
              "MPI_Improbe");
    if (!flag) return std::nullopt;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    Message message;
    message.source = status.MPI_SOURCE;
    message.frame.resize(static_cast<std::size_t>(count));
    check_mpi(MPI_Mrecv(message.frame.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE),
              "MPI_Mrecv");
    message.kind = check_frame(message.frame, message.source);
    return message;
  }

  bool progress() override {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      check_mpi(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      it = done ? pending_.erase(it) : std::next(it);
    }
    return !pending_.empty();
  }

 private:
  struct PendingSend {
    Bytes frame;
    MPI_Request request;
  };

  MPI_Comm comm(Traffic traffic) const { return comms_[static_cast<std::size_t>(traffic)]; }

  int rank_;
  int size_;
  std::array<MPI_Comm, traffic_class_count> comms_{};
  std::list<PendingSend> pending_;  // stable addresses: MPI holds the buffers
};

}  // namespace

void check_launcher() {
#ifdef MPICH_VERSION
  const char* open_mpi_size = environment_value("OMPI_COMM_WORLD_SIZE");
  if (open_mpi_size != nullptr) {
    throw StartupError(
        std::string("parc: this program was built with MPICH but started by Open MPI's "
                    "launcher (OMPI_COMM_WORLD_SIZE=") +
        open_mpi_size +
        " is set), so its ranks could not find each other. Start it with MPICH's "
        "launcher instead: mpiexec.mpich -n " +
        open_mpi_size + " <program> (or srun with --mpi=pmi2).");
  }
#endif
}

struct Environment::Impl {
  bool initialized_here = false;
};

Environment::Environment(int* argc, char*** argv) : impl_(std::make_unique<Impl>()) {
  check_launcher();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    impl_->initialized_here = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  set_log_rank(rank_);
  std::array<char, 256> name{};
  gethostname(name.data(), name.size() - 1);
  host_ = name.data();
  pid_ = static_cast<std::int64_t>(getpid());
}

Environment::~Environment() {
  if (!impl_->initialized_here) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::vector<std::uint64_t> Environment::allgather(std::uint64_t value) const {
  std::vector<std::uint64_t> values(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, values.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
            "MPI_Allgather");
  return values;
}

std::vector<std::string> Environment::allgather(const std::string& value) const {
  const int length = static_cast<int>(value.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
            "MPI_Allgather");
  std::vector<int> offsets(lengths.size(), 0);
  std::exclusive_scan(lengths.begin(), lengths.end(), offsets.begin(), 0);
  std::string all(static_cast<std::size_t>(offsets.back() + lengths.back()), '\0');
  check_mpi(MPI_Allgatherv(value.data(), length, MPI_CHAR, all.data(), lengths.data(),
                           offsets.data(), MPI_CHAR, MPI_COMM_WORLD),
            "MPI_Allgatherv");
  std::vector<std::string> values;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    values.push_back(
        all.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(lengths[i])));
  }
  return values;
}

void Environment::barrier() const { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

std::unique_ptr<Endpoint> Environment::make_endpoint() const {
  return std::make_unique<MpiEndpoint>(rank_, size_);
}

void Environment::abort(int code) const {
  log().flush();
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace parc
