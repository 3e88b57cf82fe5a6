// One delivery attempt of one message to one destination: walks the planned
// hosts in MX order and their addresses, applies each host's TLS requirement
// and returns every recipient's fate. Never sends a byte of the message in
// clear or unauthenticated to a host that requires DANE.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "base/text_source.hpp"
#include "dane/plan.hpp"
#include "delivery/session.hpp"
#include "smtp/client.hpp"

namespace danemta::delivery {

class SessionCache;

struct Message {
  std::string id;         // queue id, for logs
  std::string mail_from;  // empty: null reverse-path
  std::vector<std::string> recipients;
  std::string data;  // RFC 5322 message (CRLF or LF line ends)
  // The submitter's MAIL parameters (smtp::Envelope).
  bool body_8bitmime = false;
  bool smtputf8 = false;
};

enum class Status { delivered, deferred, bounced };
std::string_view to_string(Status s);

struct RecipientResult {
  std::string recipient;
  Status status = Status::deferred;
  std::string dsn;                       // enhanced status code: "2.0.0", "4.7.323", "5.1.1"
  std::string diagnostic;                // the server's reply, or what went wrong
  std::optional<dane::Outcome> outcome;  // set for failures danemta decided
  // The reply the remote server sent that decided this result (a 421 at the
  // greeting or EHLO included); unset for danemta's own outcomes (DANE,
  // DNSSEC, timeouts, broken connections). RFC 3464 section 2.3.6: a DSN's
  // Diagnostic-Code is "smtp;" only when this is set.
  std::optional<smtp::Reply> reply;
  std::string relay;  // "mx1.example.org[192.0.2.1]:25"
  dane::Authentication tls = dane::Authentication::none;
};

// What happened at one address (for logs, TLS-RPT and `check`).
struct AddressAttempt {
  std::string host;
  std::string address;
  std::optional<dane::Outcome> failure;
  std::string detail;
  dane::Authentication tls = dane::Authentication::none;
  tls::SessionFacts facts;
  bool mail_sent = false;
  std::string local_address;  // our address on that connection ("" if none was made)
  bool connected = false;     // a greeting was received
  // The server offered STARTTLS: a session in clear after that is one whose
  // handshake failed (opportunistic TLS falls back), not one without TLS.
  bool starttls_offered = false;
};

struct AttemptResult {
  std::vector<RecipientResult> recipients;  // same order as Message::recipients
  std::vector<AddressAttempt> tried;
  // Where this attempt's time went for this message (Postfix's delays=c/d):
  // setting up sessions while it was pending (connect, greeting, EHLO,
  // STARTTLS, TLS handshake, DANE verification, at every address tried),
  // and its own transactions (MAIL FROM to the reply after the data).
  std::chrono::steady_clock::duration setup{};
  std::chrono::steady_clock::duration transmission{};
};

struct DeliveryOptions {
  std::string helo_name = "localhost";
  smtp::ClientConfig client;
  // RFC 5321 section 5.1: hosts of equal MX preference are tried in random
  // order to spread the load (never across preferences: TLSA never reorders).
  bool shuffle_equal_preference = true;
  // Sessions are parked here after the attempt and taken from it when the
  // plan for a host and address is unchanged (see session_cache.hpp); null:
  // every session ends with QUIT.
  SessionCache* cache = nullptr;
};

// Where mail for a recipient domain goes: the name to plan and how. A
// [transport] next hop replaces the domain's MX hosts and brings its own TLS
// policy; otherwise the domain's [policy] applies, or opportunistic TLS for
// a TLS report (RFC 8460 section 3: reports must get through a broken policy).
struct Target {
  std::string name;
  dane::PlanOptions options;
  bool routed = false;  // through a [transport] next hop
};
Target target_for(const config::Config& cfg, std::string_view domain, bool tls_report = false);

// The SMTP client's settings from [delivery]: timeouts and source addresses.
smtp::ClientConfig client_config(const config::Config& cfg);

// The order hosts are tried in: plan order, with runs of equal preference
// shuffled when `shuffle` is set. Indexes into plan.hosts.
std::vector<std::size_t> host_order(const dane::DestinationPlan& plan, bool shuffle);

boost::asio::awaitable<AttemptResult> deliver(boost::asio::ssl::context& tls_context,
                                              dane::DestinationPlan plan, Message message,
                                              DeliveryOptions options);

// Several messages to one destination: each session that meets a host's
// requirement carries as many of them as it can, one transaction after the
// other (DESIGN.md section 8: a TLS handshake costs more than the rest of a
// delivery). A message whose session breaks goes on to the next address.
// One result per message, in order; each message's `tried` lists the
// attempts made while it was still pending (with protocol and cipher but
// without the peer chain); `sessions` lists every address tried once, with
// the full session facts (for TLS reporting).
struct BatchResult {
  std::vector<AttemptResult> messages;
  std::vector<AddressAttempt> sessions;
};

// What the caller takes part in while a batch runs (DESIGN.md section 8: each
// message's result is recorded as it completes, so a crash repeats at most
// the messages in flight, one per session).
struct BatchHooks {
  // Opens message `index`'s text just before it is sent; it is read in
  // pieces, never held whole. Unset: Message::data. An error (here or while
  // reading) defers that message's recipients with 4.3.0 and the diagnostic.
  std::function<boost::asio::awaitable<Result<std::unique_ptr<TextSource>>>(std::size_t index)>
      load;
  // Called once per message as soon as its result in this attempt is final
  // (a server accepted or refused it, or every host was tried), and awaited
  // before the session goes on with the next message.
  std::function<boost::asio::awaitable<void>(std::size_t index, const AttemptResult& result)>
      completed;
};

boost::asio::awaitable<BatchResult> deliver_batch(boost::asio::ssl::context& tls_context,
                                                  dane::DestinationPlan plan,
                                                  std::vector<Message> messages,
                                                  DeliveryOptions options, BatchHooks hooks = {});

}  // namespace danemta::delivery
