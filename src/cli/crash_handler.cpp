// On a fatal signal, prints a backtrace to stderr before dying, so a crash report says where.
// A SIGBUS in a memory-mapped model file (truncated while in use) is named as such first.
// Frames are "binary(+offset)": `addr2line -f -C -e ferrum OFFSET` names them.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "cli/commands.h"
#include "core/mapped_files.h"

namespace ferrum::cli {
namespace {

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  // A bus error inside a mapped model file: it shrank under us. Say so before the backtrace.
  if (sig == SIGBUS && info) report_mapped_file_fault(info->si_addr, STDERR_FILENO);
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
  struct sigaction sa {};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
}

}  // namespace ferrum::cli
