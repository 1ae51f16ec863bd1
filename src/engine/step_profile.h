// FERRUM_PROFILE=1: where the engine thread's time goes (scheduling and proposing, launching,
// collecting, emitting), logged every 200 steps that ran.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>

#include "core/log.h"

namespace ferrum {

using ProfileClock = std::chrono::steady_clock;

inline double ms_between(ProfileClock::time_point a, ProfileClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
inline double ms_since(ProfileClock::time_point t) { return ms_between(t, ProfileClock::now()); }

struct StepProfile {
  bool on = std::getenv("FERRUM_PROFILE") != nullptr;
  double schedule = 0, forward = 0, sample = 0, emit = 0;
  int64_t steps = 0, rows = 0;

  // One step that ran: begun, scheduled, launched, collected (emitted until now).
  void add(ProfileClock::time_point begun, ProfileClock::time_point scheduled, ProfileClock::time_point launched,
           ProfileClock::time_point collected, size_t step_rows) {
    schedule += ms_between(begun, scheduled);
    forward += ms_between(scheduled, launched);
    sample += ms_between(launched, collected);
    emit += ms_since(collected);
    rows += static_cast<int64_t>(step_rows);
    if (++steps % 200 != 0) return;
    const double n = static_cast<double>(steps);
    log::info("engine profile over {} steps ({:.1f} rows/step): schedule {:.2f} ms, launch {:.2f} ms, "
              "collect {:.2f} ms, emit {:.2f} ms per step",
              steps, rows / n, schedule / n, forward / n, sample / n, emit / n);
  }
};

}  // namespace ferrum
