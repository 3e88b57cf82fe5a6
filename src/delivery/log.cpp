#include "delivery/log.hpp"

#include <cmath>

namespace danemta::delivery {

namespace {

using logging::one_line;

double non_negative(double s) {
  return s > 0 ? s : 0;
}

// Seconds for JSON: a number, to the millisecond.
double json_seconds(double s) {
  return std::round(non_negative(s) * 1000) / 1000;
}

logging::Level level_of(Status s) {
  switch (s) {
    case Status::delivered:
      return logging::Level::info;
    case Status::deferred:
      return logging::Level::warning;
    case Status::bounced:
      return logging::Level::error;
  }
  return logging::Level::warning;
}

}  // namespace

Delays delays_of(double queued, double elapsed, double setup, double transmission) {
  Delays d;
  d.queue = non_negative(queued);
  d.setup = non_negative(setup);
  d.transmission = non_negative(transmission);
  d.wait = non_negative(non_negative(elapsed) - d.setup - d.transmission);
  return d;
}

std::string postfix_seconds(double seconds) {
  if (!(seconds > 0)) return "0";
  if (seconds >= 10) return std::to_string(static_cast<long long>(seconds));
  const long long hundredths = std::llround(seconds * 100);
  if (hundredths >= 1000) return "10";
  std::string out = std::to_string(hundredths / 100);
  const auto fraction = static_cast<int>(hundredths % 100);
  if (fraction != 0) {
    out += '.';
    out += static_cast<char>('0' + fraction / 10);
    if (fraction % 10 != 0) out += static_cast<char>('0' + fraction % 10);
  }
  return out;
}

std::string status_reason(const RecipientResult& r, bool expired) {
  std::string reason = one_line(r.diagnostic);
  if (r.outcome) reason = std::string(dane::info(*r.outcome).name) + ": " + reason;
  if (expired) reason += "; queue lifetime expired";
  return reason;
}

std::string log_line(const std::string& queue_id, const RecipientResult& r, const Delays& delays,
                     bool expired) {
  std::string line = queue_id + ": to=<" + r.recipient + ">";
  line += ", relay=" + (r.relay.empty() ? std::string("none") : r.relay);
  line += ", delay=" + postfix_seconds(delays.total());
  line += ", delays=" + postfix_seconds(delays.queue) + "/" + postfix_seconds(delays.wait) + "/" +
          postfix_seconds(delays.setup) + "/" + postfix_seconds(delays.transmission);
  line += ", dsn=" + r.dsn;
  line += ", status=" + std::string(to_string(r.status));
  line += " (" + status_reason(r, expired) + ")";
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

logging::Event delivery_event(const std::string& queue_id, const RecipientResult& r,
                              const Delays& delays, bool expired) {
  logging::Event e;
  e.level = level_of(r.status);
  e.id = queue_id;
  e.kind = "delivery";
  e.fields = {{"to", r.recipient},
              {"relay", r.relay.empty() ? "none" : r.relay},
              {"delay", json_seconds(delays.total())},
              {"delays",
               {{"queue", json_seconds(delays.queue)},
                {"wait", json_seconds(delays.wait)},
                {"setup", json_seconds(delays.setup)},
                {"transmission", json_seconds(delays.transmission)}}},
              {"dsn", r.dsn},
              {"status", std::string(to_string(r.status))},
              {"diagnostic", one_line(r.diagnostic)},
              {"tls", std::string(dane::to_string(r.tls))},
              {"expired", expired}};
  if (r.outcome) e.fields["outcome"] = std::string(dane::info(*r.outcome).name);
  e.lines.push_back({logging::Program::smtp, log_line(queue_id, r, delays, expired)});
  return e;
}

logging::Event attempt_event(const std::string& queue_id, const AddressAttempt& a) {
  logging::Event e;
  e.level = logging::Level::warning;
  e.id = queue_id;
  e.kind = "attempt";
  e.fields = {{"host", a.host},
              {"address", a.address},
              {"detail", one_line(a.detail)},
              {"tls", std::string(dane::to_string(a.tls))}};
  if (a.failure) e.fields["outcome"] = std::string(dane::info(*a.failure).name);
  if (!a.facts.protocol.empty()) e.fields["protocol"] = a.facts.protocol;
  if (!a.facts.cipher.empty()) e.fields["cipher"] = a.facts.cipher;
  e.lines.push_back({logging::Program::smtp, log_attempt(queue_id, a)});
  return e;
}

}  // namespace danemta::delivery
