// On a fatal signal, prints a backtrace to stderr before dying, so a crash report says where.
// Frames are "binary(+offset)": `addr2line -f -C -e ferrum OFFSET` names them.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "cli/commands.h"

namespace ferrum::cli {
namespace {

void on_fatal_signal(int sig) {
  const char* head = "\nferrum crashed (signal ";
  (void)!write(STDERR_FILENO, head, std::strlen(head));
  const char* name = strsignal(sig);
  (void)!write(STDERR_FILENO, name, std::strlen(name));
  const char* tail = "); backtrace:\n";
  (void)!write(STDERR_FILENO, tail, std::strlen(tail));
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void install_crash_handler() {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_fatal_signal);
}

}  // namespace ferrum::cli
