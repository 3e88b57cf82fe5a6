#include "delivery/log.hpp"

namespace danemta::delivery {

namespace {

// Replies may span lines; a log line may not.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

std::string log_line(const std::string& queue_id, const RecipientResult& r) {
  std::string line = queue_id + ": to=<" + r.recipient + ">";
  line += ", relay=" + (r.relay.empty() ? std::string("none") : r.relay);
  line += ", dsn=" + r.dsn;
  line += ", status=" + std::string(to_string(r.status));
  if (r.outcome) line += " " + std::string(dane::info(*r.outcome).name);
  line += " (" + one_line(r.diagnostic) + ")";
  line += ", tls=" + std::string(dane::to_string(r.tls));
  return line;
}

std::string log_attempt(const std::string& queue_id, const AddressAttempt& a) {
  std::string line = queue_id + ": " + a.host + "[" + a.address + "]: ";
  if (a.failure) line += std::string(dane::info(*a.failure).name) + ": ";
  line += one_line(a.detail);
  if (!a.facts.protocol.empty()) line += ", " + a.facts.protocol + " " + a.facts.cipher;
  line += ", tls=" + std::string(dane::to_string(a.tls));
  return line;
}

Fields recipient_fields(const RecipientResult& r) {
  Fields f{{"to", r.recipient},
           {"relay", r.relay.empty() ? "none" : r.relay},
           {"dsn", r.dsn},
           {"status", std::string(to_string(r.status))},
           {"diagnostic", one_line(r.diagnostic)},
           {"tls", std::string(dane::to_string(r.tls))}};
  if (r.outcome) f.emplace_back("outcome", std::string(dane::info(*r.outcome).name));
  return f;
}

Fields attempt_fields(const AddressAttempt& a) {
  Fields f{{"host", a.host},
           {"address", a.address},
           {"detail", one_line(a.detail)},
           {"tls", std::string(dane::to_string(a.tls))}};
  if (a.failure) f.emplace_back("outcome", std::string(dane::info(*a.failure).name));
  if (!a.facts.protocol.empty()) f.emplace_back("protocol", a.facts.protocol);
  if (!a.facts.cipher.empty()) f.emplace_back("cipher", a.facts.cipher);
  return f;
}

}  // namespace danemta::delivery
