#include "relay/failed_recipient.hpp"

namespace danemta::relay {

dsn::FailedRecipient to_failed_recipient(const delivery::RecipientResult& rr,
                                         const std::string& status, std::int64_t now) {
  dsn::FailedRecipient f;
  f.address = rr.recipient;
  f.status = status;
  f.remote_mta = rr.relay.substr(0, rr.relay.find('['));
  f.diagnostic = rr.diagnostic;
  f.last_attempt = now;
  if (rr.outcome) {
    const dane::OutcomeInfo& i = dane::info(*rr.outcome);
    f.outcome = std::string(i.name);
    f.summary = std::string(i.summary);
    f.fix = std::string(i.fix);
  }
  if (rr.reply) {
    f.diagnostic_is_smtp = true;
    f.diagnostic = rr.reply->to_string();
  }
  return f;
}

}  // namespace danemta::relay
