#pragma once
// Writing a Python payload's parts (buffer-protocol objects) into a message.

#include <parc/comm/archive.hpp>

#include <pybind11/pybind11.h>

namespace parc::python {

// Writes the bytes of every buffer-protocol object in `parts` to `out`, in order. A large
// one goes as a tail of the message when `out` collects tails: sent from the object's own
// memory, which the message holds (a buffer export) until its send completes. Such a tail
// is borrowed (Tail::borrowed) unless the object is immutable (bytes). With the GIL.
void write_parts(const pybind11::iterable& parts, ByteWriter& out);

}  // namespace parc::python
