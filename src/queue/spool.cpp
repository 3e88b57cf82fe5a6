#include "queue/spool.hpp"

#include <algorithm>

#include "base/text.hpp"

namespace danemta::queue {

std::string_view to_string(RecipientState s) {
  switch (s) {
    case RecipientState::pending:
      return "pending";
    case RecipientState::delivered:
      return "delivered";
    case RecipientState::bounced:
      return "bounced";
  }
  return "unknown";
}

std::string_view to_string(QueueAction a) {
  switch (a) {
    case QueueAction::hold:
      return "hold";
    case QueueAction::release:
      return "release";
    case QueueAction::requeue:
      return "requeue";
  }
  return "unknown";
}

bool MessageInfo::finished() const {
  for (const RecipientStatus& r : recipients) {
    if (r.state == RecipientState::pending) return false;
  }
  return true;
}

bool MessageInfo::held_in_part() const {
  return std::any_of(recipients.begin(), recipients.end(), [](const RecipientStatus& r) {
    return r.state == RecipientState::pending && r.held;
  });
}

bool MessageInfo::held() const {
  return !finished() &&
         std::all_of(recipients.begin(), recipients.end(), [](const RecipientStatus& r) {
           return r.state != RecipientState::pending || r.held;
         });
}

std::size_t Changes::recipients() const {
  std::size_t n = 0;
  for (const auto& m : messages) n += m.second;
  return n;
}

namespace {

// "local" and "domain" of "local@domain" (split at the last '@'); the
// domain empty when there is no '@'.
std::pair<std::string_view, std::string_view> split_address(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return {address, {}};
  return {address.substr(0, at), address.substr(at + 1)};
}

}  // namespace

bool same_recipient(std::string_view wanted, std::string_view address) {
  const auto [want_local, want_domain] = split_address(wanted);
  const auto [local, domain] = split_address(address);
  if (want_domain.empty() || domain.empty()) return false;
  return want_local == local && normalize_domain(want_domain) == normalize_domain(domain);
}

bool Selector::matches(const std::string& message_id, std::string_view address,
                       std::string_view domain) const {
  if (all) return true;
  if (std::find(ids.begin(), ids.end(), message_id) != ids.end()) return true;
  for (const std::string& d : domains)
    if (!d.empty() && normalize_domain(d) == domain) return true;
  for (const std::string& a : addresses)
    if (same_recipient(a, address)) return true;
  return false;
}

}  // namespace danemta::queue
