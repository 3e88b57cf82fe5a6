// One log line per recipient per attempt, queue id first, in the words
// Postfix operators know (DESIGN.md section 6):
//   Q1: to=<b@example.org>, relay=mx1.example.org[192.0.2.1]:25, dsn=2.0.0,
//   status=sent (250 2.0.0 Ok), tls=dane-verified
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "delivery/deliver.hpp"

namespace danemta::delivery {

std::string log_line(const std::string& queue_id, const RecipientResult& r);

// One line per address tried ("Q1: mx1.example.org[192.0.2.1]: tlsa-invalid: ..."),
// for the attempts that did not carry the message.
std::string log_attempt(const std::string& queue_id, const AddressAttempt& a);

// The same facts as key/value pairs, for the JSON-lines log
// ("to", "relay", "dsn", "status", "outcome", "diagnostic", "tls").
using Fields = std::vector<std::pair<std::string, std::string>>;
Fields recipient_fields(const RecipientResult& r);
Fields attempt_fields(const AddressAttempt& a);

}  // namespace danemta::delivery
