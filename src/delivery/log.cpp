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

}  // namespace danemta::delivery
