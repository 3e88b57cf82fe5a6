#include "relay/relay.hpp"
#include "base/system.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <map>
#include <random>
#include <set>

#include "base/text.hpp"
#include "dane/plan.hpp"
#include "delivery/deliver.hpp"
#include "delivery/log.hpp"
#include "dsn/dsn.hpp"
#include "relay/reporting.hpp"
#include "smtp/server.hpp"
#include "tls/context.hpp"

namespace danemta::relay {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

std::string expired_status(const std::string& outcome_name) {
  if (auto o = dane::outcome_named(outcome_name)) return std::string(dane::code(*o, true));
  return "5.4.7";
}

namespace {

template <class R>
awaitable<R> call(std::function<R()> f) {
  co_return f();
}

Result<asio::ip::tcp::endpoint> parse_endpoint(const std::string& s) {
  std::string host;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return fail("bad listen address " + s, Severity::permanent);
  return asio::ip::tcp::endpoint(address, static_cast<std::uint16_t>(std::stoi(port)));
}

// dane::plan_destination as an awaitable.
auto async_plan(dns::Resolver& resolver, std::string domain, dane::PlanOptions options) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(dane::DestinationPlan)>(
      [&resolver](auto handler, std::string d, dane::PlanOptions o) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        dane::plan_destination(
            resolver, std::move(d), o,
            [h](dane::DestinationPlan plan, dane::AnswerSet) { (*h)(std::move(plan)); });
      },
      use_awaitable, std::move(domain), options);
}

}  // namespace

struct Relay::Impl : std::enable_shared_from_this<Relay::Impl> {
  Impl(asio::io_context& io_, config::Config cfg_, dns::Resolver& resolver_, queue::Spool& spool_,
       std::ostream& log_, std::function<queue::Time()> now_)
      : io(io_),
        cfg(std::move(cfg_)),
        resolver(resolver_),
        spool(spool_),
        log(log_),
        now(std::move(now_)),
        tls_context(asio::ssl::context::tls_client),
        timer(io_),
        rng(std::random_device{}()) {
    hostname = cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;
  }

  asio::io_context& io;
  config::Config cfg;
  dns::Resolver& resolver;
  queue::Spool& spool;
  std::ostream& log;
  std::function<queue::Time()> now;
  std::string hostname;
  asio::ssl::context tls_context;
  // One worker thread: SQLite calls (and their fsync) never block the loop.
  asio::thread_pool pool{1};
  asio::steady_timer timer;
  std::mt19937 rng;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors;
  std::set<std::string> busy;                     // message ids being delivered
  std::map<std::string, std::size_t> per_domain;  // attempts in flight per domain
  std::size_t active = 0;
  tlsrpt::Store* tlsrpt_store = nullptr;
  bool stopping = false;
  bool woken = false;

  // Runs a blocking spool call on the worker thread, resuming on the loop.
  // Callers pass a named std::function: g++ 12 destroys a lambda-to-function
  // temporary inside a co_await expression twice (HACKING.md).
  template <class R>
  awaitable<R> blocking(std::function<R()> f) {
    co_return co_await asio::co_spawn(pool, call<R>(std::move(f)), use_awaitable);
  }

  // One event, one line: Postfix-style text, or a JSON object with the
  // same facts ([relay] log_format = "json").
  void event(const std::string& id, std::string_view kind, const delivery::Fields& fields,
             const std::string& text) {
    if (!cfg.relay.log_json) {
      log << text << std::endl;
      return;
    }
    nlohmann::json j;
    j["time"] = utc_time(now(), "%Y-%m-%dT%H:%M:%SZ");
    if (!id.empty()) j["id"] = id;
    j["event"] = kind;
    for (const auto& [k, v] : fields) j[k] = v;
    log << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  }
  // A free-text notice (errors, operator information).
  void line(const std::string& text) { event("", "notice", {{"text", text}}, text); }

  void wake() {
    woken = true;
    timer.cancel();
  }

  queue::Time backoff(int attempts) {
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    return queue::retry_delay(attempts, dist(rng), cfg.relay.min_backoff.count(),
                              cfg.relay.max_backoff.count());
  }
};

namespace {

using ImplPtr = std::shared_ptr<Relay::Impl>;

// RFC 5321 section 4.4: a relay prepends a Received: trace field.
std::string received_header(const Relay::Impl& r, const smtp::ReceivedMessage& m, queue::Time now) {
  return "Received: from " + (m.helo.empty() ? std::string("unknown") : m.helo) + " ([" + m.client +
         "])\r\n\tby " + r.hostname + " (danemta) with ESMTP; " + rfc5322_date(now) + "\r\n";
}

awaitable<Result<std::string>> accept_message(ImplPtr r, smtp::ReceivedMessage m) {
  queue::NewMessage nm;
  nm.received_at = r->now();
  nm.mail_from = m.mail_from;
  nm.recipients = m.recipients;
  nm.data = received_header(*r, m, nm.received_at) + m.data;
  nm.received_from = "[" + m.client + "]";
  const queue::NewMessage& stored = nm;
  const std::function<Result<std::string>()> enqueue = [r, &stored]() {
    return r->spool.enqueue(stored);
  };
  Result<std::string> id = co_await r->blocking(enqueue);
  if (!id) {
    r->line("NOQUEUE: client=[" + m.client + "], from=<" + m.mail_from +
            ">: cannot store the message: " + id.error().message);
    co_return id;
  }
  r->event(*id, "queued",
           {{"client", m.client},
            {"from", m.mail_from},
            {"size", std::to_string(nm.data.size())},
            {"nrcpt", std::to_string(nm.recipients.size())}},
           *id + ": client=[" + m.client + "], from=<" + m.mail_from +
               ">, size=" + std::to_string(nm.data.size()) +
               ", nrcpt=" + std::to_string(nm.recipients.size()) + " (queued)");
  r->wake();
  co_return id;
}

dsn::FailedRecipient failed_recipient(const delivery::RecipientResult& rr,
                                      const std::string& status, queue::Time now) {
  dsn::FailedRecipient f;
  f.address = rr.recipient;
  f.status = status;
  f.remote_mta = rr.relay.substr(0, rr.relay.find('['));
  f.diagnostic = rr.diagnostic;
  f.last_attempt = now;
  if (rr.outcome) {
    const dane::OutcomeInfo& i = dane::info(*rr.outcome);
    f.outcome = std::string(i.name);
    f.summary = std::string(i.summary);
    f.fix = std::string(i.fix);
  } else {
    f.diagnostic_is_smtp = true;
    auto said = f.diagnostic.find(" said: ");
    if (said != std::string::npos) f.diagnostic = f.diagnostic.substr(said + 7);
  }
  return f;
}

// Queues the bounce for `failed`. False when it could not be stored: the
// caller then keeps those recipients pending rather than losing the notice.
awaitable<bool> send_bounce(ImplPtr r, queue::Job job, std::string original,
                            std::vector<dsn::FailedRecipient> failed) {
  if (job.mail_from.empty()) {
    // RFC 5321 section 6.1: never bounce a bounce.
    r->line(job.message_id + ": non-delivery notification for the null sender dropped");
    co_return true;
  }
  dsn::BounceInput in;
  in.reporting_mta = r->hostname;
  in.original_id = job.message_id;
  in.original_sender = job.mail_from;
  in.arrival_date = job.received_at;
  in.now = r->now();
  in.recipients = std::move(failed);
  in.original_headers = dsn::header_section(original);
  in.boundary_seed = job.message_id;
  queue::NewMessage nm;
  nm.mail_from = "";
  nm.recipients = {job.mail_from};
  nm.data = dsn::make_bounce(in);
  nm.received_at = in.now;
  nm.received_from = "local";
  const queue::NewMessage& stored = nm;
  const std::function<Result<std::string>()> enqueue = [r, &stored]() {
    return r->spool.enqueue(stored);
  };
  Result<std::string> id = co_await r->blocking(enqueue);
  if (!id) {
    r->line(job.message_id +
            ": cannot queue the non-delivery notification (retried later): " + id.error().message);
    co_return false;
  }
  r->event(job.message_id, "bounce", {{"bounce_id", *id}, {"to", job.mail_from}},
           job.message_id + ": sender non-delivery notification: " + *id);
  r->wake();
  co_return true;
}

// Turns one message's attempt into spool updates, log lines and the list of
// recipients to report in a bounce.
void account(Relay::Impl& r, const queue::Job& job, delivery::AttemptResult& result,
             queue::Time now, std::vector<queue::RecipientUpdate>& updates,
             std::vector<dsn::FailedRecipient>& failed) {
  const std::string& id = job.message_id;
  for (const delivery::AddressAttempt& a : result.tried)
    if (!a.mail_sent)
      r.event(id, "attempt", delivery::attempt_fields(a), delivery::log_attempt(id, a));
  const bool expired = now - job.received_at >= r.cfg.relay.queue_lifetime.count();
  for (std::size_t i = 0; i < result.recipients.size() && i < job.recipients.size(); ++i) {
    delivery::RecipientResult& rr = result.recipients[i];
    queue::RecipientUpdate u;
    u.index = job.recipient_indexes[i];
    u.dsn = rr.dsn;
    u.diagnostic = rr.diagnostic;
    u.outcome = rr.outcome ? std::string(dane::info(*rr.outcome).name) : "";
    std::string extra;
    switch (rr.status) {
      case delivery::Status::delivered:
        u.state = queue::RecipientState::delivered;
        break;
      case delivery::Status::bounced:
        u.state = queue::RecipientState::bounced;
        failed.push_back(failed_recipient(rr, rr.dsn, now));
        break;
      case delivery::Status::deferred:
        if (expired) {
          u.state = queue::RecipientState::bounced;
          u.dsn = expired_status(u.outcome);
          rr.dsn = u.dsn;
          rr.status = delivery::Status::bounced;
          extra = " (queue lifetime expired)";
          failed.push_back(failed_recipient(rr, u.dsn, now));
        } else {
          u.state = queue::RecipientState::pending;
          u.next_attempt_at = now + r.backoff(job.attempts + 1);
        }
        break;
    }
    delivery::Fields fields = delivery::recipient_fields(rr);
    if (!extra.empty()) fields.emplace_back("expired", "true");
    r.event(id, "delivery", fields, delivery::log_line(id, rr) + extra);
    updates.push_back(std::move(u));
  }
}

delivery::DeliveryOptions delivery_options(const Relay::Impl& r) {
  delivery::DeliveryOptions d;
  d.helo_name = r.cfg.helo_name.empty() ? r.hostname : r.cfg.helo_name;
  smtp::ClientConfig& c = d.client;
  const config::SmtpTimeouts& t = r.cfg.timeouts;
  c.connect = t.connect;
  c.greeting = t.greeting;
  c.ehlo = t.ehlo;
  c.starttls = t.starttls;
  c.mail = t.mail;
  c.rcpt = t.rcpt;
  c.data_init = t.data_init;
  c.data_block = t.data_block;
  c.dot = t.dot;
  return d;
}

// One attempt for several messages to one destination: one plan, and each
// session carries as many of them as it can (DESIGN.md section 8).
awaitable<void> deliver_jobs(ImplPtr r, std::vector<queue::Job> jobs) {
  const std::string domain = jobs.front().domain;
  std::vector<std::string> ids;
  for (const queue::Job& j : jobs) ids.push_back(j.message_id);
  const std::function<std::vector<Result<std::string>>()> read = [r, ids]() {
    std::vector<Result<std::string>> out;
    for (const std::string& id : ids) out.push_back(r->spool.data(id));
    return out;
  };
  std::vector<Result<std::string>> data = co_await r->blocking(read);

  std::vector<delivery::Message> messages;
  std::vector<std::size_t> sent_jobs;  // index into jobs, parallel to messages
  std::vector<std::vector<queue::RecipientUpdate>> updates(jobs.size());
  queue::Time now = r->now();
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (data[j]) {
      messages.push_back(
          delivery::Message{jobs[j].message_id, jobs[j].mail_from, jobs[j].recipients, *data[j]});
      sent_jobs.push_back(j);
      continue;
    }
    r->line(jobs[j].message_id +
            ": cannot read the message from the spool: " + data[j].error().message);
    for (std::size_t i = 0; i < jobs[j].recipients.size(); ++i)
      updates[j].push_back({jobs[j].recipient_indexes[i], queue::RecipientState::pending,
                            now + r->backoff(jobs[j].attempts + 1), "4.3.0",
                            data[j].error().message, ""});
  }

  std::vector<std::vector<dsn::FailedRecipient>> failed(jobs.size());
  if (!messages.empty()) {
    dane::PlanOptions options{r->cfg.policy_for(domain), r->cfg.smtp_port};
    dane::DestinationPlan plan = co_await async_plan(r->resolver, domain, options);
    delivery::BatchResult batch = co_await delivery::deliver_batch(
        r->tls_context, plan, std::move(messages), delivery_options(*r));
    std::vector<delivery::AttemptResult>& results = batch.messages;
    now = r->now();
    if (r->tlsrpt_store) {
      std::vector<tlsrpt::SessionResult> seen = session_results(plan, batch, now);
      if (!seen.empty()) {
        const std::function<std::string()> keep = [r, seen]() {
          for (const tlsrpt::SessionResult& s : seen)
            if (auto ok = r->tlsrpt_store->record(s); !ok) return ok.error().message;
          return std::string();
        };
        std::string problem = co_await r->blocking(keep);
        if (!problem.empty()) r->line("tlsrpt: cannot record a session result: " + problem);
      }
    }
    for (std::size_t k = 0; k < results.size(); ++k) {
      std::size_t j = sent_jobs[k];
      account(*r, jobs[j], results[k], now, updates[j], failed[j]);
    }
  }

  // The bounce is stored before the recipients are recorded as bounced: a
  // crash in between sends the notice twice rather than never.
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (failed[j].empty() || !data[j]) continue;
    bool queued = co_await send_bounce(r, jobs[j], *data[j], std::move(failed[j]));
    if (queued) continue;
    for (queue::RecipientUpdate& u : updates[j]) {
      if (u.state != queue::RecipientState::bounced) continue;
      u.state = queue::RecipientState::pending;
      u.next_attempt_at = r->now() + r->backoff(jobs[j].attempts + 1);
    }
  }

  const std::function<std::vector<Result<void>>()> record = [r, ids, &updates]() {
    std::vector<Result<void>> out;
    for (std::size_t j = 0; j < ids.size(); ++j) out.push_back(r->spool.record(ids[j], updates[j]));
    return out;
  };
  std::vector<Result<void>> stored = co_await r->blocking(record);
  for (std::size_t j = 0; j < jobs.size(); ++j)
    if (!stored[j]) r->line(ids[j] + ": cannot record the attempt: " + stored[j].error().message);
}

awaitable<void> run_jobs(ImplPtr r, std::vector<queue::Job> jobs) {
  std::vector<std::string> ids;
  for (const queue::Job& j : jobs) ids.push_back(j.message_id);
  std::string domain = jobs.front().domain;
  co_await deliver_jobs(r, std::move(jobs));
  for (const std::string& id : ids) r->busy.erase(id);
  if (--r->per_domain[domain] == 0) r->per_domain.erase(domain);
  --r->active;
  r->wake();
}

// At most this long between scheduler passes, so `danemta queue flush` from
// another process takes effect within seconds.
constexpr queue::Time kIdle = 5;
// Messages one attempt may carry to one destination.
constexpr std::size_t kBatch = 50;

awaitable<void> scheduler(ImplPtr r) {
  while (!r->stopping) {
    r->woken = false;
    bool started = false;
    bool held_back = false;
    std::size_t room =
        r->cfg.relay.max_deliveries - std::min(r->active, r->cfg.relay.max_deliveries);
    if (room > 0) {
      std::vector<std::string> busy(r->busy.begin(), r->busy.end());
      queue::Time now = r->now();
      std::size_t limit = room * kBatch;
      const std::function<Result<std::vector<queue::Job>>()> fetch = [r, now, limit, busy]() {
        return r->spool.due(now, limit, busy);
      };
      auto due = co_await r->blocking(fetch);
      if (!due) {
        r->line("queue: cannot read the spool: " + due.error().message);
      } else {
        // Oldest first within each destination; one attempt carries up to
        // kBatch messages for one domain over shared sessions. A message with
        // recipients in two domains is two jobs: one attempt at a time.
        std::vector<std::pair<std::string, std::vector<queue::Job>>> batches;
        std::set<std::string> taken;
        for (queue::Job& job : *due) {
          if (r->busy.count(job.message_id) || !taken.insert(job.message_id).second) continue;
          auto it = std::find_if(batches.begin(), batches.end(), [&job](const auto& b) {
            return b.first == job.domain && b.second.size() < kBatch;
          });
          if (it == batches.end()) {
            batches.emplace_back(job.domain, std::vector<queue::Job>{});
            it = std::prev(batches.end());
          }
          it->second.push_back(std::move(job));
        }
        for (auto& batch : batches) {
          const std::string& domain = batch.first;
          if (r->stopping || r->active >= r->cfg.relay.max_deliveries ||
              r->per_domain[domain] >= r->cfg.relay.max_per_destination) {
            held_back = true;
            continue;
          }
          for (const queue::Job& j : batch.second) r->busy.insert(j.message_id);
          ++r->per_domain[domain];
          ++r->active;
          started = true;
          asio::co_spawn(r->io, run_jobs(r, std::move(batch.second)), asio::detached);
        }
      }
    } else {
      held_back = true;
    }
    if (r->stopping) break;
    if (started) continue;  // pick up more while there is room

    // Nothing startable now: sleep until the next retry is due, or until a
    // submission or a finished attempt wakes us.
    queue::Time wait = kIdle;
    if (!held_back) {
      const std::function<Result<std::optional<queue::Time>>()> ask = [r]() {
        return r->spool.next_due();
      };
      auto next = co_await r->blocking(ask);
      queue::Time now = r->now();
      if (next && *next && **next > now) wait = std::min(**next - now, kIdle);
    }
    if (r->woken) continue;
    r->timer.expires_after(std::chrono::seconds(wait));
    co_await r->timer.async_wait(asio::as_tuple(use_awaitable));
  }
}

}  // namespace

Relay::Relay(asio::io_context& io, config::Config config, dns::Resolver& resolver,
             queue::Spool& spool, std::ostream& log, std::function<queue::Time()> now)
    : impl_(std::make_shared<Impl>(io, std::move(config), resolver, spool, log, std::move(now))) {}

Relay::~Relay() {
  stop();
  impl_->pool.join();
}

Result<void> Relay::start() {
  if (auto ok = tls::configure_client_context(impl_->tls_context.native_handle()); !ok) return ok;
  smtp::ServerConfig server;
  server.hostname = impl_->hostname;
  server.max_message_bytes = impl_->cfg.relay.max_message_bytes;
  std::vector<config::Network> allow = impl_->cfg.relay.allow;
  auto allowed = [allow](const asio::ip::address& peer) {
    std::string text = peer.to_string();
    for (const config::Network& n : allow)
      if (config::contains(n, text)) return true;
    return false;
  };
  ImplPtr r = impl_;
  smtp::Accept accept = [r](smtp::ReceivedMessage m) { return accept_message(r, std::move(m)); };

  for (const std::string& l : impl_->cfg.relay.listen) {
    auto endpoint = parse_endpoint(l);
    if (!endpoint) return tl::unexpected(endpoint.error());
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(impl_->io);
    boost::system::error_code ec;
    acceptor->open(endpoint->protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && endpoint->address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(*endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("cannot listen on " + l + ": " + ec.message(), Severity::permanent);
    impl_->acceptors.push_back(std::move(acceptor));
  }
  for (auto& a : impl_->acceptors)
    asio::co_spawn(impl_->io, smtp::listen(*a, server, accept, allowed), asio::detached);
  asio::co_spawn(impl_->io, scheduler(impl_), asio::detached);
  return {};
}

void Relay::stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  for (auto& a : impl_->acceptors) {
    boost::system::error_code ec;
    a->close(ec);
  }
  impl_->timer.cancel();
}

void Relay::set_tlsrpt_store(tlsrpt::Store* store) {
  impl_->tlsrpt_store = store;
}

void Relay::wake() {
  impl_->wake();
}

std::size_t Relay::in_flight() const {
  return impl_->active;
}

std::vector<std::string> Relay::listening() const {
  std::vector<std::string> out;
  for (const auto& a : impl_->acceptors) {
    boost::system::error_code ec;
    auto ep = a->local_endpoint(ec);
    if (ec) continue;
    std::string host = ep.address().to_string();
    if (ep.address().is_v6()) host = "[" + host + "]";
    out.push_back(host + ":" + std::to_string(ep.port()));
  }
  return out;
}

}  // namespace danemta::relay
