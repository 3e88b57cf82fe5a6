#include "delivery/deliver.hpp"

#include "delivery/session_cache.hpp"
#include "mime/downgrade.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <random>

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
              const std::string& reason, const std::string& relay = "",
              const std::optional<smtp::Reply>& reply = std::nullopt) {
  const dane::OutcomeInfo& i = dane::info(o);
  for (std::size_t k : pending) {
    RecipientResult& r = result.recipients[k];
    r.status = i.retry ? Status::deferred : Status::bounced;
    r.dsn = std::string(dane::code(o, false));
    r.diagnostic = reason;
    r.outcome = o;
    r.relay = relay;
    r.reply = reply;
  }
}

// A failure met on the way, kept to explain the attempt if no host takes
// the message.
struct Noted {
  dane::Outcome outcome;
  std::string why;
  std::string relay;                 // "host[address]:port", or "" when no connection was made
  std::optional<smtp::Reply> reply;  // the server's reply behind it, if it sent one
};

}  // namespace

namespace {

// The fate of every recipient of `message` from one transaction's replies.
void take_replies(AttemptResult& result, const smtp::SendResult& sent, const std::string& relay,
                  dane::Authentication tls) {
  for (std::size_t i = 0; i < sent.recipients.size() && i < result.recipients.size(); ++i) {
    const smtp::RecipientResult& rr = sent.recipients[i];
    RecipientResult& r = result.recipients[i];
    r.relay = relay;
    r.tls = tls;
    r.dsn = dsn_of(rr.reply);
    r.diagnostic = rr.reply.to_string();
    r.reply = rr.reply;
    if (rr.delivered()) {
      r.status = Status::delivered;
      if (rr.reply.enhanced.empty()) r.dsn = "2.0.0";
    } else {
      r.status = rr.reply.permanent() ? Status::bounced : Status::deferred;
      r.diagnostic = relay + " said: " + rr.reply.to_string();
    }
  }
}

// The server refused the whole message (MAIL FROM or DATA), or it cannot be
// sent on this session at all: final for this attempt.
void refuse_all(AttemptResult& result, const smtp::Failure& f, const std::string& relay,
                dane::Authentication tls) {
  for (RecipientResult& r : result.recipients) {
    r.relay = relay;
    r.tls = tls;
    if (f.kind == smtp::FailureKind::unsupported) {
      // RFC 6531 section 3.5: SMTPUTF8 needed but not offered.
      r.status = Status::bounced;
      r.dsn = "5.6.7";
      r.diagnostic = f.to_string();
      r.reply.reset();
    } else {
      r.status = f.reply->permanent() ? Status::bounced : Status::deferred;
      r.dsn = dsn_of(*f.reply);
      r.diagnostic = relay + " said: " + f.reply->to_string();
      r.reply = f.reply;
    }
  }
}

// RFC 6152 section 3: 8-bit text for a hop that does not offer 8BITMIME is
// sent as 7-bit MIME or not at all. Converting needs the whole text in
// memory, so a text over kMaxDowngrade that is 8-bit is refused (5.6.3).
constexpr std::size_t kMaxDowngrade = 16 * 1024 * 1024;

struct SevenBit {
  std::optional<std::string> text;                // the 7-bit form to send instead
  std::optional<mime::DowngradeFailure> refused;  // cannot go to this hop (5.6.3, 5.6.7)
  std::optional<std::string> local_error;         // the text could not be read
};

SevenBit seven_bit(TextSource& source) {
  SevenBit out;
  const bool whole = source.size() <= kMaxDowngrade;
  std::string text;
  bool eight_bit = false;
  for (;;) {
    const std::size_t before = text.size();
    auto n = source.read(text, 64 * 1024);
    if (!n) {
      out.local_error = "cannot read the message: " + n.error().message;
      return out;
    }
    if (*n == 0) break;
    eight_bit = eight_bit || mime::is_8bit(std::string_view(text).substr(before));
    if (!whole) text.clear();
  }
  if (auto r = source.rewind(); !r) {
    out.local_error = "cannot read the message: " + r.error().message;
    return out;
  }
  if (!eight_bit) return out;
  if (!whole) {
    out.refused = mime::DowngradeFailure{mime::DowngradeError::unconvertible, "5.6.3",
                                         "an 8-bit message of " + std::to_string(source.size()) +
                                             " octets is too large to convert to 7-bit MIME"};
    return out;
  }
  auto converted = mime::to_7bit(text);
  if (!converted) {
    out.refused = converted.error();
    return out;
  }
  out.text = std::move(*converted);
  return out;
}

}  // namespace

Target target_for(const config::Config& cfg, std::string_view domain, bool tls_report) {
  Target t;
  t.name = std::string(domain);
  t.options.policy = tls_report ? config::TlsPolicy::may : cfg.policy_for(domain);
  t.options.port = cfg.smtp_port;
  t.options.ipv4 = cfg.deliver_ipv4;
  t.options.ipv6 = cfg.deliver_ipv6;
  if (const config::Route* route = cfg.route_for(domain)) {
    t.routed = true;
    t.name = route->host;
    t.options.policy = cfg.policy_for(*route);
    if (route->port != 0) t.options.port = route->port;
    t.options.mx_lookup = route->mx_lookup;
    t.options.address_literal = route->address_literal;
  }
  return t;
}

smtp::ClientConfig client_config(const config::Config& cfg) {
  smtp::ClientConfig c;
  const config::SmtpTimeouts& t = cfg.timeouts;
  c.connect = t.connect;
  c.greeting = t.greeting;
  c.ehlo = t.ehlo;
  c.starttls = t.starttls;
  c.mail = t.mail;
  c.rcpt = t.rcpt;
  c.data_init = t.data_init;
  c.data_block = t.data_block;
  c.dot = t.dot;
  c.source_address = cfg.source_address;
  c.source_address6 = cfg.source_address6;
  return c;
}

std::vector<std::size_t> host_order(const dane::DestinationPlan& plan, bool shuffle) {
  std::vector<std::size_t> order(plan.hosts.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!shuffle) return order;
  static thread_local std::mt19937 rng{std::random_device{}()};
  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin + 1;
    while (end < order.size() && plan.hosts[end].preference == plan.hosts[begin].preference) ++end;
    std::shuffle(order.begin() + static_cast<std::ptrdiff_t>(begin),
                 order.begin() + static_cast<std::ptrdiff_t>(end), rng);
    begin = end;
  }
  return order;
}

boost::asio::awaitable<BatchResult> deliver_batch(boost::asio::ssl::context& tls_context,
                                                  dane::DestinationPlan plan,
                                                  std::vector<Message> messages,
                                                  DeliveryOptions options, BatchHooks hooks) {
  BatchResult batch;
  batch.messages.resize(messages.size());
  std::vector<AttemptResult>& results = batch.messages;
  std::vector<bool> done(messages.size(), false);
  for (std::size_t m = 0; m < messages.size(); ++m) {
    for (const std::string& rcpt : messages[m].recipients) {
      RecipientResult r;
      r.recipient = rcpt;
      results[m].recipients.push_back(std::move(r));
    }
  }
  auto fail_message = [&](std::size_t m, dane::Outcome o, const std::string& why,
                          const std::string& relay,
                          const std::optional<smtp::Reply>& reply = std::nullopt) {
    std::vector<std::size_t> every(messages[m].recipients.size());
    for (std::size_t k = 0; k < every.size(); ++k) every[k] = k;
    fail_all(results[m], every, o, why, relay, reply);
  };

  if (plan.failure) {
    for (std::size_t m = 0; m < messages.size(); ++m) {
      fail_message(m, *plan.failure, plan.reason, "");
      done[m] = true;  // final for this attempt: the caller records it now
      if (hooks.completed) co_await hooks.completed(m, results[m]);
    }
    co_return batch;
  }

  auto executor = co_await boost::asio::this_coro::executor;
  auto& io = static_cast<boost::asio::io_context&>(executor.context());

  // The outcome reported when no host takes a message: the first policy
  // (security) failure in MX order, else the first failure of any kind.
  std::optional<Noted> first_security;
  std::optional<Noted> first_other;
  auto note = [&](dane::Outcome o, const std::string& why, const std::string& at = "",
                  const std::optional<smtp::Reply>& reply = std::nullopt) {
    std::optional<Noted>& slot = dane::policy_failure(o) ? first_security : first_other;
    if (!slot) slot = Noted{o, why, at, reply};
  };
  auto pending = [&]() { return std::find(done.begin(), done.end(), false) != done.end(); };

  for (std::size_t index : host_order(plan, options.shuffle_equal_preference)) {
    const dane::HostPlan& host = plan.hosts[index];
    if (host.requirement == dane::Requirement::unusable) {
      note(*host.failure, host.name + ": " + host.reason);
      continue;
    }
    for (const std::string& address : host.addresses) {
      if (!pending()) break;
      const auto setup_start = std::chrono::steady_clock::now();
      // A session parked by an earlier attempt under an identical plan for
      // this host and address, checked with RSET as it may have been closed
      // meanwhile; else a new one.
      const std::string key =
          options.cache ? session_key(plan, host, address, options.helo_name) : std::string();
      std::unique_ptr<smtp::Client> client;
      SessionSetup s;
      auto session_opened = setup_start;
      std::size_t carried = 0;
      bool reused = false;
      while (options.cache && !client) {
        std::optional<ParkedSession> parked = options.cache->take(key);
        if (!parked) break;
        auto alive = co_await parked->client->rset();
        if (!alive) continue;  // closed by now; the next one, or a new session
        client = std::move(parked->client);
        s = std::move(parked->setup);
        session_opened = parked->opened;
        carried = parked->transactions;
        reused = true;
      }
      if (!client) {
        client = std::make_unique<smtp::Client>(io, options.client);
        SessionOptions so{options.helo_name, plan.port, true};
        s = co_await establish(*client, tls_context, host, address, so);
      }
      const auto setup_time = std::chrono::steady_clock::now() - setup_start;
      for (std::size_t m = 0; m < messages.size(); ++m)
        if (!done[m]) results[m].setup += setup_time;
      AddressAttempt attempt{host.name,
                             address,
                             s.failure,
                             s.reason,
                             s.authentication(),
                             s.tls_verdict.facts,
                             false,
                             s.local_address,
                             s.greeting.has_value(),
                             s.starttls_offered};
      // One TLS session, however many attempts it serves: a reused one is
      // not reported again (RFC 8460 counts sessions).
      if (!reused) batch.sessions.push_back(attempt);
      // Each message's copy leaves out the peer chain (DER certificates, a
      // few KiB): a batch of 50 would copy it 50 times; `sessions` keeps it.
      attempt.facts.chain.clear();
      std::string relay = relay_name(host.name, address, plan.port);

      if (!s.ready()) {
        if (s.failure) {
          note(*s.failure, relay + ": " + s.reason, relay);
        } else {
          // A server that refuses us at the greeting or EHLO with 5xx, or a
          // network failure: try the next address (RFC 5321 section 5.1).
          note(dane::Outcome::connection_failed, relay + ": " + s.reason, relay,
               s.smtp_failure ? s.smtp_failure->reply : std::nullopt);
        }
        for (std::size_t m = 0; m < messages.size(); ++m)
          if (!done[m]) results[m].tried.push_back(attempt);
        continue;
      }

      // DESIGN.md section 8: several transactions over one authenticated
      // session (the client sends RSET between them when needed). The
      // session met this host's requirement; it is used for this host only.
      bool session_alive = true;
      for (std::size_t m = 0; m < messages.size() && session_alive; ++m) {
        if (done[m]) continue;
        // Defers message m for a local reason (its text cannot be read).
        auto local_failure = [&](const std::string& why) {
          for (RecipientResult& r : results[m].recipients) {
            r.status = Status::deferred;
            r.dsn = "4.3.0";
            r.diagnostic = why;
            r.outcome.reset();
            r.reply.reset();
          }
        };
        std::unique_ptr<TextSource> text;
        if (hooks.load) {
          Result<std::unique_ptr<TextSource>> opened = co_await hooks.load(m);
          if (!opened) {
            local_failure(opened.error().message);
            done[m] = true;  // final for this attempt: the caller records it now
            if (hooks.completed) co_await hooks.completed(m, results[m]);
            continue;
          }
          text = std::move(*opened);
        } else {
          text = std::make_unique<ViewSource>(messages[m].data);
        }
        std::string converted;  // the 7-bit form, when the hop needs one
        if (!client->capabilities() || !client->capabilities()->eightbitmime) {
          SevenBit prepared = seven_bit(*text);
          if (prepared.local_error) {
            local_failure(*prepared.local_error);
            done[m] = true;  // final for this attempt: the caller records it now
            if (hooks.completed) co_await hooks.completed(m, results[m]);
            continue;
          }
          if (prepared.refused) {
            for (RecipientResult& r : results[m].recipients) {
              r.status = Status::bounced;
              r.dsn = prepared.refused->status;
              r.diagnostic = prepared.refused->reason + " (" + relay + " does not offer 8BITMIME)";
              r.relay = relay;
              r.tls = s.authentication();
            }
            done[m] = true;  // final for this attempt: the caller records it now
            if (hooks.completed) co_await hooks.completed(m, results[m]);
            continue;
          }
          if (prepared.text) {
            converted = std::move(*prepared.text);
            text = std::make_unique<ViewSource>(converted);
          }
        }
        smtp::Envelope env{messages[m].mail_from, messages[m].recipients, messages[m].body_8bitmime,
                           messages[m].smtputf8};
        const auto send_start = std::chrono::steady_clock::now();
        auto sent = co_await client->send(env, *text);
        ++carried;
        results[m].transmission += std::chrono::steady_clock::now() - send_start;
        text.reset();
        AddressAttempt mine = attempt;
        mine.mail_sent = true;
        bool final = true;
        if (sent) {
          take_replies(results[m], *sent, relay, s.authentication());
        } else if ((sent.error().kind == smtp::FailureKind::rejected && sent.error().reply) ||
                   sent.error().kind == smtp::FailureKind::unsupported) {
          mine.detail = sent.error().to_string();
          refuse_all(results[m], sent.error(), relay, s.authentication());
        } else if (sent.error().kind == smtp::FailureKind::local_error) {
          // Our side failed, not the server: the session goes on if it can.
          mine.detail = sent.error().to_string();
          local_failure("cannot read the message: " + sent.error().message);
          session_alive = client->connected();
        } else {
          // The session broke: this message and the rest go to the next address.
          mine.detail = sent.error().to_string();
          note(dane::Outcome::connection_failed, relay + ": " + sent.error().to_string(), relay,
               sent.error().reply);
          session_alive = false;
          final = false;
        }
        results[m].tried.push_back(std::move(mine));
        if (final) {
          done[m] = true;
          if (hooks.completed) co_await hooks.completed(m, results[m]);
        }
      }
      if (session_alive && options.cache)
        options.cache->park(
            key, ParkedSession{std::move(client), std::move(s), session_opened, carried});
      else if (session_alive)
        co_await client->quit();
      else
        client->close();
    }
  }

  for (std::size_t m = 0; m < messages.size(); ++m) {
    if (done[m]) continue;
    if (const std::optional<Noted>& n = first_security ? first_security : first_other)
      fail_message(m, n->outcome, n->why, n->relay, n->reply);
    else
      fail_message(m, dane::Outcome::no_address, "no MX host has an address", "");
    done[m] = true;  // final for this attempt: the caller records it now
    if (hooks.completed) co_await hooks.completed(m, results[m]);
  }
  co_return batch;
}

boost::asio::awaitable<AttemptResult> deliver(boost::asio::ssl::context& tls_context,
                                              dane::DestinationPlan plan, Message message,
                                              DeliveryOptions options) {
  std::vector<Message> one;
  one.push_back(std::move(message));
  BatchResult batch =
      co_await deliver_batch(tls_context, std::move(plan), std::move(one), std::move(options));
  co_return std::move(batch.messages.front());
}

}  // namespace danemta::delivery
