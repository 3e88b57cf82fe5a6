#include "smtp/tally.hpp"

#include <algorithm>

namespace danemta::smtp {

namespace {

std::string ratio(std::size_t succeeded, std::size_t total) {
  if (succeeded == total && total != 0) return std::to_string(total);
  return std::to_string(succeeded) + "/" + std::to_string(total);
}

}  // namespace

void CommandTally::count(std::string_view name, bool succeeded) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [name](const Entry& e) { return e.name == name; });
  if (it == entries_.end()) {
    entries_.push_back(Entry{std::string(name), 0, 0});
    it = entries_.end() - 1;
  }
  ++it->total;
  if (succeeded) ++it->succeeded;
}

std::string CommandTally::summary() const {
  std::string out;
  std::size_t succeeded = 0;
  std::size_t total = 0;
  for (const Entry& e : entries_) {
    out += " " + e.name + "=" + ratio(e.succeeded, e.total);
    succeeded += e.succeeded;
    total += e.total;
  }
  out += " commands=" + ratio(succeeded, total);
  return out;
}

}  // namespace danemta::smtp
