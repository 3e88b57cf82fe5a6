#include <algorithm>
#include <cmath>

#include "queue/spool.hpp"

namespace danemta::queue {

namespace {
constexpr Time kFirstDelay = 5 * 60;
constexpr Time kMaxDelay = 60 * 60;
constexpr Time kMinDelay = 60;
}  // namespace

Time retry_delay(int attempts, double random01, double jitter_fraction) {
  Time delay = kFirstDelay;
  for (int i = 1; i < attempts && delay < kMaxDelay; ++i) delay *= 2;
  delay = std::min(delay, kMaxDelay);

  // NaN compares false everywhere: treat it as "no spread".
  const double r = std::isnan(random01) ? 0.5 : std::clamp(random01, 0.0, 1.0);
  const double f = std::isnan(jitter_fraction) ? 0.0 : std::clamp(jitter_fraction, 0.0, 1.0);
  const double jitter = static_cast<double>(delay) * f * (2.0 * r - 1.0);
  const auto jittered = static_cast<Time>(std::llround(static_cast<double>(delay) + jitter));
  return std::max(jittered, kMinDelay);
}

}  // namespace danemta::queue
