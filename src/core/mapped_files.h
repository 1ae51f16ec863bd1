// Memory-mapped files (model weights), remembered so that a SIGBUS inside one can be reported
// as what it is: the file shrank (was truncated, or replaced by a shorter one) after it was
// mapped, and reading a page past its new end faulted. The crash handler asks here first.
#pragma once
#include <cstddef>

namespace ferrum {

void register_mapped_file(const void* start, size_t size, const char* path);
void unregister_mapped_file(const void* start);

// Async-signal-safe. When `addr` lies in a registered mapping, writes to `fd` a message naming
// the file and what to do, and returns true.
bool report_mapped_file_fault(const void* addr, int fd);

}  // namespace ferrum
