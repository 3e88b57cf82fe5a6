#include "queue/spool.hpp"

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

bool MessageInfo::finished() const {
  for (const RecipientStatus& r : recipients) {
    if (r.state == RecipientState::pending) return false;
  }
  return true;
}

}  // namespace danemta::queue
