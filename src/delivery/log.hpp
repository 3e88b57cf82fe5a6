// One log line per recipient per attempt, queue id first, laid out as
// Postfix's smtp lines so that pflogsumm and Postfix patterns read them
// (DESIGN.md section 6):
//
//   Q1: to=<b@example.org>, relay=mx1.example.org[192.0.2.1]:25, delay=0.35,
//   delays=0.01/0/0.21/0.13, dsn=2.0.0, status=sent (250 2.0.0 Ok), tls=dane-verified
//   Q2: to=<c@example.net>, relay=mx.example.net[192.0.2.9]:25, delay=301,
//   delays=300/0/0.4/0, dsn=4.7.323, status=deferred (tlsa-invalid: ...), tls=none
//
// The parenthesis holds the server's reply, or danemta's outcome name
// (docs/error-codes.md) and what happened; `tls=` comes after it, so that
// the line up to the status reads as Postfix's.
#pragma once

#include <string>

#include "delivery/deliver.hpp"
#include "logging/logger.hpp"

namespace danemta::delivery {

// Postfix's delays=a/b/c/d for one message in one attempt, in seconds:
//   queue         a: from arrival (the submitter's 250) to the start of this
//                    attempt: the wait for the scheduler and any retry backoff
//   wait          b: inside the attempt, waiting for a session: messages
//                    ahead of it on a shared session, reading its text
//   setup         c: DNS (MX, address and TLSA lookups, DNSSEC validation)
//                    and session setup (connect, greeting, EHLO, STARTTLS,
//                    TLS handshake, DANE verification) while it was pending
//   transmission  d: its SMTP transaction, MAIL FROM to the final reply
// delay= is their sum: arrival to the result.
struct Delays {
  double queue = 0;
  double wait = 0;
  double setup = 0;
  double transmission = 0;
  double total() const { return queue + wait + setup + transmission; }
};

// `queued`: arrival to the attempt's start; `elapsed`: the attempt's start
// to this message's result; `setup` and `transmission` as measured (the
// rest of `elapsed` is the wait). Negative inputs (a clock step) count as 0.
Delays delays_of(double queued, double elapsed, double setup, double transmission);

// Seconds as Postfix prints them: below 10 with at most two decimals and no
// trailing zeros ("0.35", "1.2", "0"), from 10 on whole seconds ("12").
std::string postfix_seconds(double seconds);

// What goes inside status=...(): the reply or "OUTCOME: what happened",
// with "; queue lifetime expired" when `expired`.
std::string status_reason(const RecipientResult& r, bool expired = false);

std::string log_line(const std::string& queue_id, const RecipientResult& r, const Delays& delays,
                     bool expired = false);

// One line per address tried ("Q1: mx1.example.org[192.0.2.1]: tlsa-invalid: ..."),
// for the attempts that did not carry the message.
std::string log_attempt(const std::string& queue_id, const AddressAttempt& a);

// The events ("delivery": one recipient; "attempt": one address), logged
// under danemta/smtp; JSON fields in docs/logs.md.
logging::Event delivery_event(const std::string& queue_id, const RecipientResult& r,
                              const Delays& delays, bool expired = false);
logging::Event attempt_event(const std::string& queue_id, const AddressAttempt& a);

}  // namespace danemta::delivery
