#include "delivery/deliver.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>

namespace danemta::delivery {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::delivered:
      return "sent";
    case Status::deferred:
      return "deferred";
    case Status::bounced:
      return "bounced";
  }
  return "deferred";
}

namespace {

std::string relay_name(const std::string& host, const std::string& address, std::uint16_t port) {
  return host + "[" + address + "]:" + std::to_string(port);
}

// RFC 3463: the server's enhanced code when it gave one, else the class.
std::string dsn_of(const smtp::Reply& r) {
  if (!r.enhanced.empty()) return r.enhanced;
  return std::to_string(r.code / 100) + ".0.0";
}

void fail_all(AttemptResult& result, const std::vector<std::size_t>& pending, dane::Outcome o,
              const std::string& reason, const std::string& relay = "") {
  const dane::OutcomeInfo& i = dane::info(o);
  for (std::size_t k : pending) {
    RecipientResult& r = result.recipients[k];
    r.status = i.retry ? Status::deferred : Status::bounced;
    r.dsn = std::string(dane::code(o, false));
    r.diagnostic = reason;
    r.outcome = o;
    r.relay = relay;
  }
}

// A failure met on the way, kept to explain the attempt if no host takes
// the message.
struct Noted {
  dane::Outcome outcome;
  std::string why;
  std::string relay;  // "host[address]:port", or "" when no connection was made
};

}  // namespace

boost::asio::awaitable<AttemptResult> deliver(boost::asio::ssl::context& tls_context,
                                              dane::DestinationPlan plan, Message message,
                                              DeliveryOptions options) {
  AttemptResult result;
  for (const std::string& rcpt : message.recipients) {
    RecipientResult r;
    r.recipient = rcpt;
    result.recipients.push_back(std::move(r));
  }
  std::vector<std::size_t> pending;
  for (std::size_t k = 0; k < message.recipients.size(); ++k) pending.push_back(k);

  if (plan.failure) {
    fail_all(result, pending, *plan.failure, plan.reason);
    co_return result;
  }

  auto executor = co_await boost::asio::this_coro::executor;
  auto& io = static_cast<boost::asio::io_context&>(executor.context());

  // The outcome reported when no host takes the message: the first policy
  // (security) failure in MX order, else the first failure of any kind.
  std::optional<Noted> first_security;
  std::optional<Noted> first_other;
  auto note = [&](dane::Outcome o, const std::string& why, const std::string& at = "") {
    std::optional<Noted>& slot = dane::policy_failure(o) ? first_security : first_other;
    if (!slot) slot = Noted{o, why, at};
  };

  for (const dane::HostPlan& host : plan.hosts) {
    if (host.requirement == dane::Requirement::unusable) {
      note(*host.failure, host.name + ": " + host.reason);
      continue;
    }
    for (const std::string& address : host.addresses) {
      smtp::Client client(io, options.client);
      SessionOptions so{options.helo_name, plan.port, true};
      SessionSetup s = co_await establish(client, tls_context, host, address, so);
      AddressAttempt attempt{host.name,           address, s.failure, s.reason, s.authentication(),
                             s.tls_verdict.facts, false};
      std::string relay = relay_name(host.name, address, plan.port);

      if (!s.ready()) {
        if (s.failure) {
          note(*s.failure, relay + ": " + s.reason, relay);
        } else {
          // A server that refuses us at the greeting or EHLO with 5xx, or a
          // network failure: try the next address (RFC 5321 section 5.1).
          note(dane::Outcome::connection_failed, relay + ": " + s.reason, relay);
        }
        result.tried.push_back(std::move(attempt));
        continue;
      }

      smtp::Envelope env;
      env.mail_from = message.mail_from;
      for (std::size_t k : pending) env.recipients.push_back(message.recipients[k]);
      auto sent = co_await client.send(env, message.data);
      attempt.mail_sent = true;
      if (!sent) {
        const smtp::Failure& f = sent.error();
        attempt.detail = f.to_string();
        result.tried.push_back(std::move(attempt));
        if (f.kind == smtp::FailureKind::rejected && f.reply) {
          // The server refused the whole message (MAIL FROM or DATA): its
          // answer is final for this attempt.
          for (std::size_t k : pending) {
            RecipientResult& r = result.recipients[k];
            r.status = f.reply->permanent() ? Status::bounced : Status::deferred;
            r.dsn = dsn_of(*f.reply);
            r.diagnostic = relay + " said: " + f.reply->to_string();
            r.relay = relay;
            r.tls = s.authentication();
          }
          co_await client.quit();
          co_return result;
        }
        if (f.kind == smtp::FailureKind::unsupported) {
          // RFC 6531 section 3.5: SMTPUTF8 needed but not offered.
          for (std::size_t k : pending) {
            RecipientResult& r = result.recipients[k];
            r.status = Status::bounced;
            r.dsn = "5.6.7";
            r.diagnostic = f.to_string();
            r.relay = relay;
          }
          co_await client.quit();
          co_return result;
        }
        note(dane::Outcome::connection_failed, relay + ": " + f.to_string(), relay);
        client.close();
        continue;
      }

      for (std::size_t i = 0; i < sent->recipients.size() && i < pending.size(); ++i) {
        const smtp::RecipientResult& rr = sent->recipients[i];
        RecipientResult& r = result.recipients[pending[i]];
        r.relay = relay;
        r.tls = s.authentication();
        r.dsn = dsn_of(rr.reply);
        r.diagnostic = rr.reply.to_string();
        if (rr.delivered()) {
          r.status = Status::delivered;
          if (rr.reply.enhanced.empty()) r.dsn = "2.0.0";
        } else if (rr.reply.permanent()) {
          r.status = Status::bounced;
          r.diagnostic = relay + " said: " + rr.reply.to_string();
        } else {
          r.status = Status::deferred;
          r.diagnostic = relay + " said: " + rr.reply.to_string();
        }
      }
      result.tried.push_back(std::move(attempt));
      co_await client.quit();
      co_return result;
    }
  }

  if (const std::optional<Noted>& n = first_security ? first_security : first_other) {
    fail_all(result, pending, n->outcome, n->why, n->relay);
  } else {
    fail_all(result, pending, dane::Outcome::no_address, "no MX host has an address");
  }
  co_return result;
}

}  // namespace danemta::delivery
