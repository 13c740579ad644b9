#pragma once
// parc: parallel task managers over MPI. The one header a C++ program includes.

#include <parc/closures/closure.hpp>
#include <parc/comm/spmd_context.hpp>
#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/parallel_exception.hpp>
#include <parc/exceptions/policy.hpp>
#include <parc/exceptions/registry.hpp>
#include <parc/managers/future.hpp>
#include <parc/managers/options.hpp>
#include <parc/managers/pipeline.hpp>
#include <parc/managers/proxy.hpp>
#include <parc/managers/runtime.hpp>
#include <parc/managers/spmd.hpp>
#include <parc/managers/task_farm.hpp>
