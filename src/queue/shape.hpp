// The queue's shape, as Postfix's qshape draws it: per recipient domain, how
// many pending recipients have waited how long since their message arrived.
// Pure: the caller passes the messages (Spool::list) and the time.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "queue/spool.hpp"

namespace danemta::queue {

// Upper bounds of the age buckets in minutes: a recipient whose message has
// waited A minutes counts in the first bucket whose bound exceeds A (under 5
// minutes: the first; 5 to under 10: the second); the last bucket holds
// everything from 1280 minutes on ("1280+").
inline constexpr std::array<int, 9> kShapeMinutes = {5, 10, 20, 40, 80, 160, 320, 640, 1280};

struct ShapeRow {
  std::string domain;  // "TOTAL" for the total row
  std::size_t total = 0;
  std::array<std::size_t, kShapeMinutes.size() + 1> counts{};
};

struct Shape {
  ShapeRow total;                 // every domain
  std::vector<ShapeRow> domains;  // most recipients first, then by name
};

// The pending recipients of `messages` not on hold (with `held`: only those
// on hold), by domain and age at `now`. A message from the future (clock
// stepped back) counts as new.
Shape shape(const std::vector<MessageInfo>& messages, Time now, bool held = false);

}  // namespace danemta::queue
