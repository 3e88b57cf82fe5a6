// Bringing one SMTP session with one address of a planned host to the point
// where mail may be sent, enforcing the host's TLS requirement (RFC 7672
// section 2.2, RFC 3207). Delivery and `danemta check` both use this, so
// "check says OK" means "the relay would deliver".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "dane/plan.hpp"
#include "dane/tls_glue.hpp"
#include "smtp/client.hpp"

namespace danemta::delivery {

struct SessionSetup {
  std::string host;
  std::string address;
  std::string local_address;  // our end of the connection, once connected
  std::optional<smtp::Reply> greeting;
  bool starttls_offered = false;
  bool tls = false;  // TLS is active on the session
  dane::TlsVerdict tls_verdict;
  // Set when the session must not carry mail (the connection is then closed).
  std::optional<dane::Outcome> failure;
  // Set when the failure is the server's or the network's, not a policy one.
  std::optional<smtp::Failure> smtp_failure;
  std::string reason;  // why it failed, or how the session is protected
  bool ready() const { return !failure && !smtp_failure; }
  dane::Authentication authentication() const {
    return tls ? tls_verdict.authentication : dane::Authentication::none;
  }
};

struct SessionOptions {
  std::string helo_name = "localhost";
  std::uint16_t port = 25;
  // Opportunistic TLS that fails in the handshake is retried in clear on a
  // new connection (RFC 7435 section 3); `check` turns this off to report
  // the failure itself.
  bool plaintext_fallback = true;
};

// Connects `client` to `address`, reads the greeting, EHLO, STARTTLS where
// offered or required, DANE verification where required, EHLO again. On
// success the client is ready for send(). A host whose TLS requirement is not
// met gets the outcome of DESIGN.md section 5 and no byte of mail is sent.
boost::asio::awaitable<SessionSetup> establish(smtp::Client& client,
                                               boost::asio::ssl::context& tls_context,
                                               const dane::HostPlan& host, std::string address,
                                               SessionOptions options);

}  // namespace danemta::delivery
