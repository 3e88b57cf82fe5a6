#include "queue/shape.hpp"

#include <algorithm>
#include <map>

namespace danemta::queue {

namespace {

std::size_t bucket(Time age_seconds) {
  for (std::size_t i = 0; i < kShapeMinutes.size(); ++i)
    if (age_seconds < static_cast<Time>(kShapeMinutes[i]) * 60) return i;
  return kShapeMinutes.size();
}

}  // namespace

Shape shape(const std::vector<MessageInfo>& messages, Time now, bool held) {
  Shape s;
  s.total.domain = "TOTAL";
  std::map<std::string, ShapeRow> rows;
  for (const MessageInfo& m : messages) {
    const std::size_t b = bucket(std::max<Time>(0, now - m.received_at));
    for (const RecipientStatus& r : m.recipients) {
      if (r.state != RecipientState::pending || r.held != held) continue;
      ShapeRow& row = rows[r.domain];
      row.domain = r.domain;
      ++row.total;
      ++row.counts[b];
      ++s.total.total;
      ++s.total.counts[b];
    }
  }
  for (auto& [domain, row] : rows) s.domains.push_back(std::move(row));
  std::stable_sort(s.domains.begin(), s.domains.end(),
                   [](const ShapeRow& a, const ShapeRow& b) { return a.total > b.total; });
  return s;
}

}  // namespace danemta::queue
