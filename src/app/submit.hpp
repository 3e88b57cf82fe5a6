// Submission to the running relay: SMTP to its listener, the path `danemta
// send` and `danemta sendmail` share (the relay is the only writer of its
// spool, so local submitters never open it).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "smtp/client.hpp"

namespace danemta::app {

struct Submitted {
  // Where the whole submission failed (connect, greeting, EHLO, MAIL, DATA
  // or the session breaking); unset when every transaction got an answer.
  std::optional<smtp::Failure> failure;
  // One per envelope sent, in order (fewer than asked after a failure).
  std::vector<smtp::SendResult> results;
};

// Connects to `address` ("IP:PORT" or "[IPv6]:PORT"), says EHLO, sends
// `text` once per envelope over that one session (each its own
// transaction, so its own queue id), and QUITs. Blocks until done; each
// step times out by smtp::ClientConfig's defaults, the connection after 30 s.
Submitted submit_to_relay(const std::string& address, std::vector<smtp::Envelope> envelopes,
                          std::shared_ptr<const std::string> text);

}  // namespace danemta::app
