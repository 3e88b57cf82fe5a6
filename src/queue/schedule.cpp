#include <algorithm>
#include <cmath>

#include "queue/spool.hpp"

namespace danemta::queue {

Time retry_delay(int attempts, double random01, Time first, Time cap, double jitter_fraction) {
  first = std::max<Time>(first, 1);
  cap = std::max(cap, first);
  const Time kMinDelay = std::min<Time>(60, first);
  Time delay = first;
  for (int i = 1; i < attempts && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);

  // NaN compares false everywhere: treat it as "no spread".
  const double r = std::isnan(random01) ? 0.5 : std::clamp(random01, 0.0, 1.0);
  const double f = std::isnan(jitter_fraction) ? 0.0 : std::clamp(jitter_fraction, 0.0, 1.0);
  const double jitter = static_cast<double>(delay) * f * (2.0 * r - 1.0);
  const auto jittered = static_cast<Time>(std::llround(static_cast<double>(delay) + jitter));
  return std::max(jittered, kMinDelay);
}

}  // namespace danemta::queue
