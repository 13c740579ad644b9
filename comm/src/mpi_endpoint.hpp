#pragma once
// Internal to parc_comm: the MPI endpoint and its regions (mpi_endpoint.cpp), the MPI
// request channel (request_channel_mpi.cpp).

#include <parc/comm/endpoint.hpp>
#include <parc/comm/request_channel.hpp>

#include <memory>

namespace parc {

// Throws std::runtime_error naming `what` unless `code` is MPI_SUCCESS.
void check_mpi(int code, const char* what);

// An endpoint over communicators duplicated from MPI_COMM_WORLD; regions it opens are
// made from one more duplicate. MPI calls on it and on its regions must all happen on
// the thread that made it (MPI_THREAD_FUNNELED), and its regions must be destroyed
// before it.
std::unique_ptr<Endpoint> make_mpi_endpoint(int rank, int size);

// The request channel of this rank (collective: duplicates communicators). Its progress
// thread runs when MPI runs at MPI_THREAD_MULTIPLE; otherwise requests are refused.
std::unique_ptr<RequestChannel> make_mpi_request_channel(int rank, int size, int thread_level);

}  // namespace parc
