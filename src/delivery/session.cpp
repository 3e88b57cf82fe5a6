#include "delivery/session.hpp"

#include <boost/asio/ssl/context.hpp>

namespace danemta::delivery {

namespace {

// Mandatory TLS that cannot be had: STARTTLS missing, refused or the
// handshake failed (RFC 7672 section 2.2: no downgrade, try the next host).
void fail_mandatory_tls(SessionSetup& s, const dane::HostPlan& host, std::string why) {
  s.failure = dane::tls_unavailable_outcome(host);
  s.reason = std::move(why) + "; " + host.name + " requires " +
             (host.requirement == dane::Requirement::dane ? "DANE-authenticated TLS" : "TLS");
}

}  // namespace

boost::asio::awaitable<SessionSetup> establish(smtp::Client& client,
                                               boost::asio::ssl::context& tls_context,
                                               const dane::HostPlan& host, std::string address,
                                               SessionOptions options) {
  SessionSetup s;
  s.host = host.name;
  s.address = address;
  if (host.requirement == dane::Requirement::unusable) {
    s.failure = host.failure.value_or(dane::Outcome::validation_failure);
    s.reason = host.reason;
    co_return s;
  }

  auto greeting = co_await client.connect(address, options.port);
  if (!greeting) {
    s.smtp_failure = greeting.error();
    s.reason = greeting.error().to_string();
    co_return s;
  }
  s.greeting = *greeting;
  s.local_address = client.local_address();

  auto caps = co_await client.ehlo(options.helo_name);
  if (!caps) {
    s.smtp_failure = caps.error();
    s.reason = caps.error().to_string();
    client.close();
    co_return s;
  }
  s.starttls_offered = caps->starttls;
  bool mandatory =
      host.requirement == dane::Requirement::dane || host.requirement == dane::Requirement::encrypt;

  if (!caps->starttls) {
    if (mandatory) {
      fail_mandatory_tls(s, host, "STARTTLS is not offered");
      co_await client.quit();
      co_return s;
    }
    s.reason = "STARTTLS not offered: opportunistic TLS, sending in clear";
    co_return s;
  }

  std::string prepare_error;
  // Named, not a temporary inside the co_await expression: g++ 12 may
  // destroy such temporaries twice.
  const std::function<bool(SSL*)> prepare = [&host, &prepare_error](SSL* ssl) {
    auto ok = dane::prepare_ssl(ssl, host);
    if (!ok) prepare_error = ok.error().message;
    return static_cast<bool>(ok);
  };
  auto tls = co_await client.starttls(tls_context, prepare);
  if (!tls) {
    const smtp::Failure& f = tls.error();
    if (!prepare_error.empty()) {
      s.failure = dane::Outcome::validation_failure;
      s.reason = "cannot set up TLS: " + prepare_error;
      client.close();
      co_return s;
    }
    if (mandatory) {
      fail_mandatory_tls(s, host, f.to_string());
      client.close();
      co_return s;
    }
    if (f.kind == smtp::FailureKind::timeout || !options.plaintext_fallback) {
      s.smtp_failure = f;
      s.reason = f.to_string();
      client.close();
      co_return s;
    }
    // RFC 7435: opportunistic TLS that fails falls back to clear text, on a
    // new connection that does not try STARTTLS again.
    client.close();
    auto again = co_await client.connect(address, options.port);
    if (!again) {
      s.smtp_failure = again.error();
      s.reason = again.error().to_string();
      co_return s;
    }
    auto caps2 = co_await client.ehlo(options.helo_name);
    if (!caps2) {
      s.smtp_failure = caps2.error();
      s.reason = caps2.error().to_string();
      client.close();
      co_return s;
    }
    s.reason = "TLS failed (" + f.to_string() + "): opportunistic TLS, sending in clear";
    co_return s;
  }

  s.tls = true;
  s.tls_verdict = dane::judge_session(client.ssl(), host);
  if (s.tls_verdict.failure) {
    s.failure = s.tls_verdict.failure;
    s.reason = s.tls_verdict.reason;
    co_await client.quit();
    co_return s;
  }
  s.reason = s.tls_verdict.reason;

  // RFC 3207 section 4.2: forget what was learnt in clear.
  auto caps_tls = co_await client.ehlo(options.helo_name);
  if (!caps_tls) {
    s.smtp_failure = caps_tls.error();
    s.reason = caps_tls.error().to_string();
    client.close();
    co_return s;
  }
  co_return s;
}

}  // namespace danemta::delivery
