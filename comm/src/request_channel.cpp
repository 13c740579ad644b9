#include <parc/comm/request_channel.hpp>

namespace parc {

namespace {

thread_local int acting = -1;  // -1: this process's rank

}  // namespace

ActingAs::ActingAs(int rank) : previous_(acting) { acting = rank; }
ActingAs::~ActingAs() { acting = previous_; }

int RequestChannel::acting_rank() const { return acting >= 0 ? acting : rank(); }

}  // namespace parc
