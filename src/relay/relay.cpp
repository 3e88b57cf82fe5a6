#include "relay/relay.hpp"
#include "base/listen.hpp"
#include "base/system.hpp"
#include "base/workers.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>

#include "auth/credentials.hpp"
#include "base/text.hpp"
#include "dane/plan.hpp"
#include "delivery/deliver.hpp"
#include "delivery/log.hpp"
#include "delivery/session_cache.hpp"
#include "dsn/dsn.hpp"
#include "inbound/guard.hpp"
#include "logging/logger.hpp"
#include "metrics/registry.hpp"
#include "mime/header.hpp"
#include "relay/failed_recipient.hpp"
#include "relay/instruments.hpp"
#include "relay/reporting.hpp"
#include "smtp/sasl.hpp"
#include "smtp/server.hpp"
#include "tls/context.hpp"

namespace danemta::relay {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using logging::Level;
using logging::Program;

std::string expired_status(const std::string& outcome_name) {
  if (auto o = dane::outcome_named(outcome_name)) return std::string(dane::code(*o, true));
  return "5.4.7";
}

std::size_t received_fields(std::string_view message) {
  std::size_t n = 0;
  std::size_t at = 0;
  while (at < message.size()) {
    std::size_t end = message.find('\n', at);
    if (end == std::string_view::npos) end = message.size();
    std::string_view line = message.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the header section
    constexpr std::string_view kName = "received:";
    if (line.size() >= kName.size() && iequals(line.substr(0, kName.size()), kName)) ++n;
    at = end + 1;
  }
  return n;
}

namespace {

template <class R>
awaitable<R> call(std::function<R()> f) {
  co_return f();
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

// What the intake thread's sessions read of the relay: built on the loop
// from the running configuration, replaced whole (never changed in place)
// by start(), reload() and the inbound rollover.
struct IntakeView {
  config::Config cfg;
  std::string hostname;
  std::shared_ptr<const auth::Credentials> credentials;
  // Per listener address: what sessions accepted from now on use.
  std::map<std::string, std::shared_ptr<const smtp::ServerConfig>> settings;
};

struct Relay::Impl : std::enable_shared_from_this<Relay::Impl> {
  Impl(asio::io_context& io_, asio::io_context& intake_, config::Config cfg_,
       dns::Resolver& resolver_, queue::Spool& spool_, logging::Logger& log_,
       std::function<queue::Time()> now_)
      : io(io_),
        intake(&intake_),
        cfg(std::move(cfg_)),
        resolver(resolver_),
        spool(spool_),
        log(log_),
        now(std::move(now_)),
        tls_context(asio::ssl::context::tls_client),
        timer(io_),
        retention_timer(io_),
        rng(std::random_device{}()),
        sessions(io_, cache_limits(cfg)),
        pace(io_) {
    hostname = cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;
  }

  static delivery::SessionCache::Limits cache_limits(const config::Config& c) {
    delivery::SessionCache::Limits l;
    l.idle = c.connection_cache_idle;
    l.max_age = c.connection_cache_max_age;
    l.max_sessions = c.relay.max_deliveries;
    return l;
  }

  asio::io_context& io;
  // The listeners' loop, on a thread of its own (Relay owns it; null once
  // the Relay is gone). Sessions there touch only the spool (its own
  // threads), the logger and metrics (locked), `view()`, store_problem()
  // and wake_from_intake(); nothing else of this struct.
  asio::io_context* intake;
  config::Config cfg;
  dns::Resolver& resolver;
  queue::Spool& spool;
  logging::Logger& log;
  std::function<queue::Time()> now;
  std::string hostname;
  asio::ssl::context tls_context;
  // Worker threads for the spool: SQLite calls (and their fsync) never block
  // the loop. Several, so that writes arriving while one commits wait together
  // and share the next commit (the spool's group commit): one fsync for many
  // accepted messages and results instead of one each, in turn.
  static constexpr std::size_t kSpoolThreads = 8;
  Workers pool{"danemta-spool", kSpoolThreads};
  // One more for AUTH's password hashing (tens of milliseconds each), so
  // that it holds up neither the loop nor the spool.
  Workers auth_pool{"danemta-auth", 1};
  // STARTTLS's certificate and AUTH's users, as last loaded ([relay]
  // tls_cert_file, credentials_file); a reload that cannot read a new one
  // keeps these.
  std::shared_ptr<asio::ssl::context> server_tls;
  std::shared_ptr<const auth::Credentials> credentials;
  asio::steady_timer timer;
  asio::steady_timer retention_timer;  // the next pass of retention()
  std::mt19937 rng;
  // Authenticated sessions kept open between attempts ([delivery]
  // connection_cache_seconds); handed on only under an identical plan.
  delivery::SessionCache sessions;
  // Listeners (on the intake loop) by their configured address, with the
  // address actually bound. One closed by a reload is kept in `retired`:
  // its listen() coroutine may still look at it.
  struct Listening {
    std::string where;
    std::string bound;  // "127.0.0.1:10025"
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  };
  std::vector<Listening> acceptors;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> retired;
  smtp::Accept accept;
  // Attempts in flight: message id -> destination and start, for the log
  // lines of attempts a shutdown cuts off.
  std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>> running;
  std::set<std::string> busy;                     // message ids being delivered
  std::map<std::string, std::size_t> per_domain;  // attempts in flight per domain
  std::map<std::string, std::size_t> per_route;   // ... per [transport] next hop
  std::size_t active = 0;
  tlsrpt::Store* tlsrpt_store = nullptr;
  bool stopping = false;
  bool woken = false;
  // Scheduler passes are spaced by twice the last one's spool read (see
  // scheduler()); `pace` waits out the gap, and a wake() does not cut it short.
  asio::steady_timer pace;
  std::chrono::steady_clock::time_point last_pass{};
  std::chrono::steady_clock::duration last_pass_read{};
  // Results the spool could not take (a full disk), by message id; those
  // messages stay in `busy` and the scheduler starts nothing until they are
  // written.
  std::map<std::string, std::vector<queue::RecipientUpdate>> unrecorded;
  std::chrono::steady_clock::time_point next_storage_retry;
  std::chrono::steady_clock::time_point storage_quiet_until;  // no storage warning before
  // Shared with the intake thread, under intake_mutex: the view its
  // sessions read, why the last message could not be stored (a full disk;
  // empty once one is), and the numbers that make Message-IDs unique.
  mutable std::mutex intake_mutex;
  std::shared_ptr<const IntakeView> intake_view = std::make_shared<const IntakeView>();
  std::string store_problem_text;
  std::mt19937_64 id_rng{std::random_device{}()};
  metrics::Registry* metrics = nullptr;  // where figures go; null: not counted
  // [inbound]: the certificate slots the rollover guard keeps, the STARTTLS
  // context built from what each serves, and the guard's timer (a reload
  // cancels it for a check at once).
  std::vector<inbound::Slot> inbound_slots;
  std::shared_ptr<asio::ssl::context> inbound_tls;
  std::unique_ptr<asio::steady_timer> inbound_timer;
  std::chrono::steady_clock::time_point inbound_reminded;
  bool inbound_forced = false;  // the next check logs its findings whatever the reminder
  // When the queue gauges were last read from the spool, and whether a read
  // is under way: scrapes, however many, cost the spool one read a second.
  std::chrono::steady_clock::time_point queue_counted;
  bool queue_counting = false;
  std::chrono::seconds storage_retry() const { return cfg.relay.storage_retry; }

  // Runs a blocking spool call on a worker thread, resuming on the loop.
  // Callers pass a named std::function: g++ 12 destroys a lambda-to-function
  // temporary inside a co_await expression twice (HACKING.md).
  template <class R>
  awaitable<R> blocking(std::function<R()> f) {
    co_return co_await asio::co_spawn(pool.context(), call<R>(std::move(f)), use_awaitable);
  }

  // One event, one record: Postfix-style text or a JSON object with the
  // same facts ([relay] log, log_format, log_prefix; docs/logs.md).
  void event(const logging::Event& e) { log.write(e); }
  // A free-text notice about message `id` (or none).
  void line(Program program, Level level, const std::string& id, const std::string& text) {
    log.write(logging::notice(program, level, id, text));
  }

  void wake() {
    woken = true;
    timer.cancel();
  }
  // wake(), from the intake thread: on the loop.
  void wake_from_intake() {
    asio::post(io, [weak = weak_from_this()]() {
      if (const auto r = weak.lock()) r->wake();
    });
  }

  std::shared_ptr<const IntakeView> view() const {
    std::lock_guard lock(intake_mutex);
    return intake_view;
  }
  std::string store_problem() const {
    std::lock_guard lock(intake_mutex);
    return store_problem_text;
  }
  void set_store_problem(std::string problem) {
    std::lock_guard lock(intake_mutex);
    store_problem_text = std::move(problem);
  }
  std::uint64_t unique_number() {
    std::lock_guard lock(intake_mutex);
    return id_rng();
  }
  // Runs `f` on the intake thread and returns when it has run (closing a
  // listener that thread serves). The intake thread never waits for this one.
  void on_intake(const std::function<void()>& f) {
    if (intake == nullptr) return;
    std::promise<void> done;
    asio::post(*intake, [&f, &done]() {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  // Counts `amount` into counter `name` when figures are kept.
  void count(std::string_view name, const metrics::Labels& labels, double amount = 1) {
    if (metrics != nullptr) metrics->add(name, labels, amount);
  }

  queue::Time backoff(int attempts) {
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    return queue::retry_delay(attempts, dist(rng), cfg.relay.min_backoff.count(),
                              cfg.relay.max_backoff.count());
  }
};

namespace {

using ImplPtr = std::shared_ptr<Relay::Impl>;

// RFC 5321 section 4.4: a relay prepends a Received: trace field. The
// protocol is ESMTPS, ESMTPA or ESMTPSA after STARTTLS or AUTH (RFC 3848);
// the comments say how, as Postfix's do.
std::string received_header(const IntakeView& v, const smtp::ReceivedMessage& m, queue::Time now) {
  std::string h = "Received: from " + (m.helo.empty() ? std::string("unknown") : m.helo) + " ([" +
                  m.client + "])\r\n";
  const bool inbound = m.service == "inbound";
  if (inbound) {
    // From the internet: say plainly whether the client used STARTTLS.
    h += m.tls_protocol.empty()
             ? "\t(no STARTTLS: not encrypted)\r\n"
             : "\t(STARTTLS: using " + m.tls_protocol + " with cipher " + m.tls_cipher + ")\r\n";
  } else if (!m.tls_protocol.empty()) {
    h += "\t(using " + m.tls_protocol + " with cipher " + m.tls_cipher + ")\r\n";
  }
  if (!m.sasl_method.empty() && v.cfg.relay.received_auth_user)
    h += "\t(Authenticated sender: " + smtp::printable_user(m.sasl_username) + ")\r\n";
  const std::string with = std::string("ESMTP") + (m.tls_protocol.empty() ? "" : "S") +
                           (m.sasl_method.empty() ? "" : "A");
  const std::string& by =
      inbound && !v.cfg.inbound.hostname.empty() ? v.cfg.inbound.hostname : v.hostname;
  std::string for_clause;
  if (inbound && m.recipients.size() == 1) for_clause = "\r\n\tfor <" + m.recipients[0] + ">";
  return h + "\tby " + by + " (danemta) with " + with + for_clause + "; " + rfc5322_date(now) +
         "\r\n";
}

// The fields a submission gets when it lacks them, as Postfix's cleanup
// adds them (RFC 5322 3.6: Date: is required, Message-ID: should be there).
std::vector<mime::HeaderCompleter::Field> missing_fields(Relay::Impl& r, const IntakeView& v,
                                                         queue::Time now) {
  const std::uint64_t unique = r.unique_number();
  return {{"Date", "Date: " + rfc5322_date(now) + "\r\n"},
          {"Message-ID", "Message-ID: " + mime::message_id(now, unique, v.hostname) + "\r\n"}};
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A client as Postfix writes it: danemta looks up no client names, and
// Postfix writes "unknown" for a client without a verified name.
std::string client_text(const std::string& address) {
  return "unknown[" + address + "]";
}

// A message refused after its data (a mail loop, no room in the spool),
// logged as Postfix's smtpd logs a refusal.
logging::Event refused_data(const smtp::ReceivedMessage& m, const std::string& reply, Level level) {
  logging::Event e;
  e.level = level;
  e.kind = "reject";
  const std::string text = "NOQUEUE: reject: DATA from " + client_text(m.client) + ": " + reply +
                           "; from=<" + m.mail_from +
                           "> nrcpt=" + std::to_string(m.recipients.size());
  e.fields = {{"text", logging::one_line(text)},
              {"client", m.client},
              {"from", m.mail_from},
              {"nrcpt", m.recipients.size()}};
  e.lines.push_back({Program::smtpd, logging::one_line(text)});
  return e;
}

// An accepted message: Postfix's smtpd "client=" line and qmgr's
// "from=, size=, nrcpt=" line (danemta has no incoming queue: the message
// is active at once).
logging::Event queued_event(const std::string& id, const smtp::ReceivedMessage& m,
                            std::size_t size) {
  logging::Event e;
  e.id = id;
  e.kind = "queued";
  e.fields = {{"client", m.client},
              {"helo", m.helo},
              {"from", m.mail_from},
              {"size", size},
              {"nrcpt", m.recipients.size()}};
  // Postfix's words for an authenticated submitter.
  std::string sasl;
  if (!m.sasl_method.empty()) {
    const std::string user = smtp::printable_user(m.sasl_username);
    sasl = ", sasl_method=" + m.sasl_method + ", sasl_username=" + user;
    e.fields["sasl_method"] = m.sasl_method;
    e.fields["sasl_username"] = user;
  }
  if (!m.tls_protocol.empty()) e.fields["tls"] = m.tls_protocol + " " + m.tls_cipher;
  e.lines = {
      {Program::smtpd, id + ": client=" + client_text(m.client) + sasl},
      {Program::qmgr, id + ": from=<" + m.mail_from + ">, size=" + std::to_string(size) +
                          ", nrcpt=" + std::to_string(m.recipients.size()) + " (queue active)"}};
  return e;
}

// Where a submitted message's text goes while it arrives: the spool's draft,
// started with our Received: field, with Date: and Message-ID: added at the
// end of the header section when missing (only the header section is looked
// at; the body streams straight through). The first octets of the submitted
// text are kept to count its Received: fields.
class SpoolSink final : public smtp::TextSink {
 public:
  static constexpr std::size_t kHead = 64 * 1024;

  SpoolSink(Result<std::unique_ptr<queue::Draft>> draft, const std::string& received,
            std::vector<mime::HeaderCompleter::Field> missing)
      : completer_(std::move(missing)) {
    if (!draft) {
      error_ = draft.error();
      return;
    }
    draft_ = std::move(*draft);
    write_draft(received);
  }
  void write(std::string_view text) override {
    if (head_.size() < kHead) head_.append(text.substr(0, kHead - head_.size()));
    if (completer_.in_body()) {
      write_draft(text);
      return;
    }
    std::string out;
    completer_.feed(text, out);
    write_draft(out);
  }

  // The draft with the whole text, or the first error. Call once, at the end.
  Result<std::unique_ptr<queue::Draft>> take() {
    std::string rest;
    completer_.finish(rest);
    write_draft(rest);
    if (error_) return tl::unexpected(*error_);
    return std::move(draft_);
  }
  const std::string& head() const { return head_; }

 private:
  void write_draft(std::string_view text) {
    if (error_ || text.empty()) return;
    if (auto w = draft_->append(text); !w) error_ = w.error();
  }

  mime::HeaderCompleter completer_;
  std::unique_ptr<queue::Draft> draft_;
  std::optional<Error> error_;
  std::string head_;
};

// The spool's draft of a message with `header` and `body` (a submission
// whose text was collected in memory).
Result<std::unique_ptr<queue::Draft>> draft_of(Relay::Impl& r, const IntakeView& v,
                                               const std::string& header, std::string_view body) {
  SpoolSink sink(r.spool.draft(), header, missing_fields(r, v, r.now()));
  sink.write(body);
  return sink.take();
}

// On the intake thread (see Impl::intake).
awaitable<Result<std::string>> accept_message(ImplPtr r, smtp::ReceivedMessage m) {
  if (!r) co_return fail("Error: the relay is stopping", Severity::transient);
  const std::shared_ptr<const IntakeView> view = r->view();
  auto* sink = dynamic_cast<SpoolSink*>(m.text.get());
  // RFC 5321 6.3: a message that has passed too many relays is in a loop.
  if (const std::size_t hops = received_fields(sink ? std::string_view(sink->head()) : m.data);
      hops > view->cfg.relay.max_received_headers) {
    const std::string refusal = "5.4.6 Too many hops (" + std::to_string(hops) +
                                " Received: header fields): mail forwarding loop";
    r->event(refused_data(m, "554 " + refusal, Level::info));
    r->count("danemta_messages_refused_total", {{"reason", "mail-loop"}});
    co_return fail(refusal, Severity::permanent);
  }
  queue::NewMessage nm;
  nm.received_at = r->now();
  nm.received_ms = wall_ms();
  nm.mail_from = m.mail_from;
  nm.recipients = m.recipients;
  nm.received_from = "[" + m.client + "]";
  nm.body_8bitmime = m.body_8bitmime;
  nm.smtputf8 = m.smtputf8;
  Result<std::unique_ptr<queue::Draft>> text =
      sink ? sink->take() : draft_of(*r, *view, received_header(*view, m, nm.received_at), m.data);
  m.text.reset();
  std::string().swap(m.data);
  const std::size_t size = text && *text ? (*text)->size() : 0;
  Result<std::string> id = std::string();
  if (!text) {
    id = tl::unexpected(text.error());
  } else {
    const queue::NewMessage& stored = nm;
    const std::function<Result<std::string>()> enqueue = [r, &stored, &text]() {
      return r->spool.enqueue(stored, std::move(*text));
    };
    id = co_await r->blocking(enqueue);
  }
  if (!id) {
    // The client learns the kind of problem, not the spool's path; the log
    // has both.
    const Error& e = id.error();
    const std::string reply =
        e.cause == Cause::storage_full      ? "452 4.3.1 Insufficient system storage"
        : e.severity == Severity::transient ? "451 4.3.0 Error: queue file write error"
                                            : "554 5.3.0 " + e.message;
    r->event(
        refused_data(m, reply + " (cannot store the message: " + e.message + ")", Level::warning));
    r->count("danemta_messages_refused_total",
             {{"reason", e.cause == Cause::storage_full ? "storage-full" : "storage-error"}});
    if (e.severity == Severity::transient) r->set_store_problem(e.message);
    if (e.cause == Cause::storage_full)
      co_return fail("Insufficient system storage", Severity::transient, Cause::storage_full);
    if (e.severity == Severity::transient)
      co_return fail("Error: queue file write error", Severity::transient);
    co_return id;
  }
  r->event(queued_event(*id, m, size));
  r->set_store_problem("");
  r->count("danemta_messages_received_total", {});
  r->count("danemta_recipients_received_total", {}, static_cast<double>(m.recipients.size()));
  r->wake_from_intake();
  co_return id;
}

dsn::FailedRecipient failed_recipient(const delivery::RecipientResult& rr,
                                      const std::string& status, queue::Time now) {
  return to_failed_recipient(rr, status, now);
}

// Queues the bounce for `failed`. False when it could not be stored: the
// caller then keeps those recipients pending rather than losing the notice.
awaitable<bool> send_bounce(ImplPtr r, queue::Job job, std::string original,
                            std::vector<dsn::FailedRecipient> failed) {
  const bool delay_only =
      std::all_of(failed.begin(), failed.end(),
                  [](const dsn::FailedRecipient& f) { return f.action == dsn::Action::delayed; });
  const std::string kind = delay_only ? "delay notification" : "non-delivery notification";
  if (job.mail_from.empty()) {
    // RFC 5321 section 6.1: never bounce a bounce.
    r->line(Program::bounce, Level::info, job.message_id, kind + " for the null sender dropped");
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
    r->line(Program::bounce, Level::warning, job.message_id,
            "cannot queue the " + kind + " (retried later): " + id.error().message);
    co_return false;
  }
  logging::Event e;
  e.id = job.message_id;
  e.kind = delay_only ? "delay" : "bounce";
  e.fields = {{"bounce_id", *id}, {"to", job.mail_from}, {"size", nm.data.size()}};
  e.lines = {{Program::bounce, job.message_id + ": sender " + kind + ": " + *id},
             {Program::qmgr, *id + ": from=<>, size=" + std::to_string(nm.data.size()) +
                                 ", nrcpt=1 (queue active)"}};
  r->event(e);
  r->count("danemta_notifications_total", {{"kind", delay_only ? "delay" : "non-delivery"}});
  r->wake();
  co_return true;
}

// When one attempt (one destination, one plan, a batch of messages) began,
// for the delays in the log.
struct AttemptClock {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::int64_t start_ms = wall_ms();
  std::chrono::steady_clock::duration plan{};  // DNS: planning the destination
};

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Postfix's delays=a/b/c/d for `job` in the attempt timed by `clock`, whose
// result is in now.
delivery::Delays delays_of(const queue::Job& job, const AttemptClock& clock,
                           const delivery::AttemptResult& result) {
  const std::int64_t arrival = job.received_ms != 0 ? job.received_ms : job.received_at * 1000;
  return delivery::delays_of(static_cast<double>(clock.start_ms - arrival) / 1000.0,
                             seconds(std::chrono::steady_clock::now() - clock.start),
                             seconds(clock.plan + result.setup), seconds(result.transmission));
}

// Turns one message's attempt into spool updates, log lines and the list of
// recipients to report in a bounce.
void account(Relay::Impl& r, const queue::Job& job, delivery::AttemptResult& result,
             const AttemptClock& clock, queue::Time now,
             std::vector<queue::RecipientUpdate>& updates,
             std::vector<dsn::FailedRecipient>& failed) {
  const std::string& id = job.message_id;
  for (const delivery::AddressAttempt& a : result.tried)
    if (!a.mail_sent) r.event(delivery::attempt_event(id, a));
  const delivery::Delays delays = delays_of(job, clock, result);
  const bool expired = now - job.received_at >= r.cfg.relay.queue_lifetime.count();
  for (std::size_t i = 0; i < result.recipients.size() && i < job.recipients.size(); ++i) {
    delivery::RecipientResult& rr = result.recipients[i];
    queue::RecipientUpdate u;
    u.index = job.recipient_indexes[i];
    u.dsn = rr.dsn;
    u.diagnostic = rr.diagnostic;
    u.outcome = rr.outcome ? std::string(dane::info(*rr.outcome).name) : "";
    bool lifetime_over = false;
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
          lifetime_over = true;
          failed.push_back(failed_recipient(rr, u.dsn, now));
        } else {
          u.state = queue::RecipientState::pending;
          u.next_attempt_at = now + r.backoff(job.attempts + 1);
          // One "delayed" notice per recipient once it has waited long
          // enough (RFC 3464 Action: delayed), with the same explanation.
          const auto warn_after = r.cfg.relay.delay_warning.count();
          const bool warned = i < job.delay_warned.size() && job.delay_warned[i];
          if (warn_after > 0 && !warned && now - job.received_at >= warn_after) {
            dsn::FailedRecipient d = failed_recipient(rr, rr.dsn, now);
            d.action = dsn::Action::delayed;
            failed.push_back(std::move(d));
            u.delay_warned = true;
          }
        }
        break;
    }
    r.event(delivery::delivery_event(id, rr, delays, lifetime_over));
    if (r.metrics != nullptr) count_recipient(*r.metrics, rr, lifetime_over, delays.total());
    updates.push_back(std::move(u));
  }
}

delivery::DeliveryOptions delivery_options(Relay::Impl& r) {
  delivery::DeliveryOptions d;
  if (r.cfg.connection_cache_idle.count() > 0) d.cache = &r.sessions;
  d.helo_name = r.cfg.helo_name.empty() ? r.hostname : r.cfg.helo_name;
  d.client = delivery::client_config(r.cfg);
  return d;
}

// Logs that results cannot be written, at most once per storage_retry.
void storage_warning(Relay::Impl& r, const std::string& problem) {
  const auto now = std::chrono::steady_clock::now();
  if (now < r.storage_quiet_until) return;
  r.storage_quiet_until = now + r.storage_retry();
  logging::Event e;
  e.level = Level::warning;
  e.kind = "storage";
  e.fields = {{"held", r.unrecorded.size()},
              {"problem", logging::one_line(problem)},
              {"retry", r.storage_retry().count()}};
  e.lines.push_back(
      {Program::qmgr, logging::one_line("warning: cannot write delivery results to the spool (" +
                                        problem + "); " + std::to_string(r.unrecorded.size()) +
                                        " message(s) held in memory, new deliveries paused, "
                                        "retrying every " +
                                        std::to_string(r.storage_retry().count()) + "s")});
  r.event(e);
}

// Writes `updates` for message `id` and tells whether the message is now
// finished (no recipient pending). Runs on the spool's worker thread.
Result<bool> write_results(queue::Spool& spool, const std::string& id,
                           const std::vector<queue::RecipientUpdate>& updates, queue::Time now) {
  return spool.record(id, updates, now);
}

// Postfix's qmgr "removed": the message has no recipient left to try (it
// stays in the spool for `danemta queue show` for [relay]
// finished_retention_seconds, see retention()).
void log_removed(Relay::Impl& r, const std::string& id) {
  logging::Event e;
  e.id = id;
  e.kind = "removed";
  e.lines.push_back({Program::qmgr, id + ": removed"});
  r.event(e);
}

// Writes one message's results. When the spool cannot be written they stay
// in memory (the message stays busy, so it is never sent again on that
// account) and the scheduler starts nothing new until they are written
// (DESIGN.md section 8: a failed state write never means "deliver again").
awaitable<void> record(ImplPtr r, std::string id, std::vector<queue::RecipientUpdate> updates) {
  if (updates.empty()) co_return;
  const queue::Time now = r->now();
  const std::function<Result<bool>()> write = [r, &id, &updates, now]() {
    return write_results(r->spool, id, updates, now);
  };
  Result<bool> stored = co_await r->blocking(write);
  if (stored) {
    r->set_store_problem("");
    if (*stored) log_removed(*r, id);
    co_return;
  }
  if (stored.error().severity == Severity::permanent) {
    // The message was deleted meanwhile (`danemta queue delete`).
    r->line(Program::qmgr, Level::warning, id, "results not recorded: " + stored.error().message);
    co_return;
  }
  std::vector<queue::RecipientUpdate>& held = r->unrecorded[id];
  held.insert(held.end(), std::make_move_iterator(updates.begin()),
              std::make_move_iterator(updates.end()));
  storage_warning(*r, stored.error().message);
}

// Tries to write every held result; true when none is left.
awaitable<bool> write_unrecorded(ImplPtr r) {
  const auto held = r->unrecorded;
  const queue::Time now = r->now();
  const std::function<std::vector<std::pair<std::string, Result<bool>>>()> write = [r, &held,
                                                                                    now]() {
    std::vector<std::pair<std::string, Result<bool>>> out;
    for (const auto& [id, updates] : held) {
      out.emplace_back(id, write_results(r->spool, id, updates, now));
      if (!out.back().second && out.back().second.error().severity == Severity::transient) break;
    }
    return out;
  };
  auto written = co_await r->blocking(write);
  std::size_t recorded = 0;
  std::string problem;
  for (auto& [id, result] : written) {
    if (!result && result.error().severity == Severity::transient) {
      problem = result.error().message;
      break;
    }
    if (!result)
      r->line(Program::qmgr, Level::warning, id, "results not recorded: " + result.error().message);
    else if (*result)
      log_removed(*r, id);
    ++recorded;
    r->unrecorded.erase(id);
    r->busy.erase(id);
  }
  if (!problem.empty()) {
    storage_warning(*r, problem);
    co_return false;
  }
  r->storage_quiet_until = {};
  r->set_store_problem("");
  r->line(Program::qmgr, Level::info, "",
          "spool writable again: results of " + std::to_string(recorded) +
              " message(s) recorded; deliveries resume");
  co_return true;
}

// Opens one message's text for sending (read in pieces while it is sent).
awaitable<Result<std::unique_ptr<TextSource>>> open_text(ImplPtr r, std::string id) {
  const std::function<Result<std::unique_ptr<TextSource>>()> open = [r, &id]() {
    return r->spool.reader(id);
  };
  Result<std::unique_ptr<TextSource>> text = co_await r->blocking(open);
  if (!text)
    r->line(Program::qmgr, Level::error, id,
            "cannot read the message from the spool: " + text.error().message);
  co_return text;
}

// The start of a message, enough for its header section (a bounce quotes
// the headers only, RFC 3464 section 2).
awaitable<Result<std::string>> load_head(ImplPtr r, std::string id) {
  constexpr std::size_t kHead = 256 * 1024;
  const std::function<Result<std::string>()> read = [r, &id]() -> Result<std::string> {
    auto reader = r->spool.reader(id);
    if (!reader) return tl::unexpected(reader.error());
    std::string head;
    while (head.size() < kHead) {
      auto n = (*reader)->read(head, kHead - head.size());
      if (!n) return tl::unexpected(n.error());
      if (*n == 0) break;
    }
    return head;
  };
  Result<std::string> head = co_await r->blocking(read);
  if (!head)
    r->line(Program::qmgr, Level::error, id,
            "cannot read the message from the spool: " + head.error().message);
  co_return head;
}

// One message's attempt is over: log it, queue a bounce for recipients that
// failed for good, and record the result before the session goes on.
awaitable<void> complete_message(ImplPtr r, queue::Job job, delivery::AttemptResult result,
                                 std::shared_ptr<const AttemptClock> clock) {
  const queue::Time now = r->now();
  std::vector<queue::RecipientUpdate> updates;
  std::vector<dsn::FailedRecipient> failed;
  account(*r, job, result, *clock, now, updates, failed);
  if (!failed.empty()) {
    // The bounce is stored before the recipients are recorded as bounced: a
    // crash in between sends the notice twice rather than never.
    bool queued = false;
    Result<std::string> original = co_await load_head(r, job.message_id);
    if (original) queued = co_await send_bounce(r, job, *original, std::move(failed));
    if (!queued) {
      for (queue::RecipientUpdate& u : updates) {
        u.delay_warned = false;  // the delay notice is tried again next time
        if (u.state != queue::RecipientState::bounced) continue;
        u.state = queue::RecipientState::pending;
        u.next_attempt_at = r->now() + r->backoff(job.attempts + 1);
      }
    }
  }
  co_await record(r, job.message_id, std::move(updates));
}

// One attempt for several messages to one destination: one plan, and each
// session carries as many of them as it can (DESIGN.md section 8). Each
// message is read just before it is sent and recorded as soon as it is done.
awaitable<void> deliver_jobs(ImplPtr r, std::vector<queue::Job> jobs) {
  const std::string domain = jobs.front().domain;
  auto shared_jobs = std::make_shared<const std::vector<queue::Job>>(std::move(jobs));
  std::vector<delivery::Message> messages;
  for (const queue::Job& j : *shared_jobs)
    messages.push_back(delivery::Message{
        j.message_id, j.mail_from, j.recipients, {}, j.body_8bitmime, j.smtputf8});

  auto clock = std::make_shared<AttemptClock>();
  delivery::BatchHooks hooks;
  hooks.load = [r, shared_jobs](std::size_t m) {
    return open_text(r, (*shared_jobs)[m].message_id);
  };
  hooks.completed = [r, shared_jobs, clock](std::size_t m, const delivery::AttemptResult& result) {
    return complete_message(r, (*shared_jobs)[m], result, clock);
  };

  // RFC 8460 section 3: TLS reports go with opportunistic TLS, whatever the
  // destination publishes, and their sessions are not reported (target_for).
  const bool report = shared_jobs->front().tls_report;
  // [transport]: a configured next hop replaces the domain's MX hosts, with
  // the route's TLS policy (reports too: the next hop is the operator's own
  // choice, not the receiving domain's). Those sessions say nothing about the
  // receiving domain's policy, so they are not recorded for TLS reporting.
  const delivery::Target target = delivery::target_for(r->cfg, domain, report);
  const bool routed = target.routed;
  dane::DestinationPlan plan = co_await async_plan(r->resolver, target.name, target.options);
  clock->plan = std::chrono::steady_clock::now() - clock->start;
  delivery::BatchResult batch = co_await delivery::deliver_batch(
      r->tls_context, plan, std::move(messages), delivery_options(*r), std::move(hooks));
  // Metrics count every session; TLS reporting only those that speak for
  // the receiving domain's policy (not reports, not routed mail).
  std::vector<tlsrpt::SessionResult> seen;
  if ((r->tlsrpt_store || r->metrics) && !report) seen = session_results(plan, batch, r->now());
  if (r->metrics) count_sessions(*r->metrics, batch, seen);
  if (r->tlsrpt_store && !report && !routed) {
    if (!seen.empty()) {
      const std::function<std::string()> keep = [r, seen]() {
        for (const tlsrpt::SessionResult& s : seen)
          if (auto ok = r->tlsrpt_store->record(s); !ok) return ok.error().message;
        return std::string();
      };
      std::string problem = co_await r->blocking(keep);
      if (!problem.empty())
        r->line(Program::tlsrpt, Level::error, "", "cannot record a session result: " + problem);
    }
  }
}

// Attempts through a [transport] next hop share its concurrency limit; the key
// is the next hop as written ("" for mail that is not routed).
awaitable<void> run_jobs(ImplPtr r, std::vector<queue::Job> jobs, std::string route_key) {
  std::vector<std::string> ids;
  std::string domain = jobs.front().domain;
  const auto started = std::chrono::steady_clock::now();
  for (const queue::Job& j : jobs) {
    ids.push_back(j.message_id);
    r->running[j.message_id] = {domain, started};
  }
  co_await deliver_jobs(r, std::move(jobs));
  // A message whose results are held in memory stays busy until written.
  for (const std::string& id : ids) {
    r->running.erase(id);
    if (!r->unrecorded.count(id)) r->busy.erase(id);
  }
  if (--r->per_domain[domain] == 0) r->per_domain.erase(domain);
  if (!route_key.empty() && --r->per_route[route_key] == 0) r->per_route.erase(route_key);
  --r->active;
  r->wake();
}

// At most this long between scheduler passes, so `danemta queue flush` from
// another process takes effect within seconds.
constexpr queue::Time kIdle = 5;
// Messages one attempt may carry to one destination.
constexpr std::size_t kBatch = 50;

// Finished messages are removed [relay] finished_retention_seconds after
// they finished, at most kRetentionBatch per spool call so that delivery's
// spool calls get their turn on the worker threads in between. A pass runs
// every kRetentionEvery seconds (every `retention` seconds when that is
// shorter, at least every second) and goes on while full batches come back.
constexpr std::size_t kRetentionBatch = 500;
constexpr queue::Time kRetentionEvery = 60;

awaitable<void> retention(ImplPtr r) {
  while (!r->stopping) {
    const queue::Time every =
        std::clamp<queue::Time>(r->cfg.relay.finished_retention.count(), 1, kRetentionEvery);
    r->retention_timer.expires_after(std::chrono::seconds(every));
    co_await r->retention_timer.async_wait(asio::as_tuple(use_awaitable));
    std::size_t removed = 0;
    const queue::Time keep = r->cfg.relay.finished_retention.count();
    while (!r->stopping) {
      const queue::Time finished_by = r->now() - keep;
      const std::function<Result<std::size_t>()> purge = [r, finished_by]() {
        return r->spool.purge_finished(finished_by, kRetentionBatch);
      };
      Result<std::size_t> n = co_await r->blocking(purge);
      if (!n) {
        r->line(Program::qmgr, Level::warning, "",
                "cannot remove finished messages (retried in " + std::to_string(every) +
                    " s): " + n.error().message);
        break;
      }
      removed += *n;
      if (*n < kRetentionBatch) break;
    }
    if (removed == 0) continue;
    logging::Event e;
    e.kind = "retention";
    e.fields = {{"removed", removed}, {"retention", keep}};
    e.lines.push_back({Program::qmgr, "retention: removed " + std::to_string(removed) +
                                          " finished message(s), finished over " +
                                          std::to_string(keep) + " s ago"});
    r->event(e);
  }
}

awaitable<void> scheduler(ImplPtr r) {
  while (!r->stopping) {
    if (!r->unrecorded.empty()) {
      // Paused: results wait to be written; nothing new starts meanwhile.
      const auto now = std::chrono::steady_clock::now();
      if (now >= r->next_storage_retry) {
        r->next_storage_retry = now + r->storage_retry();
        if (co_await write_unrecorded(r)) continue;
      }
      if (r->stopping) break;
      r->timer.expires_at(r->next_storage_retry);
      co_await r->timer.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    // A pass reads every due recipient, those whose attempt is under way
    // included: with thousands of attempts under way a read costs
    // milliseconds, and a pass for each submission or finished attempt would
    // make the work grow with the square of the attempts under way. So passes
    // are at least twice the last read's duration apart (a quiet relay's pass
    // starts at once); whatever arrives meanwhile is picked up together. The
    // read's time includes waiting for the spool (a commit's fsync), so the
    // gap is capped at a quarter of a second.
    constexpr std::chrono::steady_clock::duration kMaxPassGap = std::chrono::milliseconds(250);
    if (const auto next = r->last_pass + std::min(kMaxPassGap, 2 * r->last_pass_read);
        std::chrono::steady_clock::now() < next) {
      r->pace.expires_at(next);
      co_await r->pace.async_wait(asio::as_tuple(use_awaitable));
      if (r->stopping) break;
    }
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
      r->last_pass = std::chrono::steady_clock::now();
      auto due = co_await r->blocking(fetch);
      r->last_pass_read = std::chrono::steady_clock::now() - r->last_pass;
      if (!due) {
        r->line(Program::qmgr, Level::error, "", "cannot read the spool: " + due.error().message);
      } else {
        // Oldest first within each destination; one attempt carries up to
        // kBatch messages for one domain over shared sessions. A message with
        // recipients in two domains is two jobs: one attempt at a time.
        std::vector<std::pair<std::string, std::vector<queue::Job>>> batches;
        std::set<std::string> taken;
        for (queue::Job& job : *due) {
          if (r->busy.count(job.message_id) || !taken.insert(job.message_id).second) continue;
          // TLS reports travel in batches of their own (another TLS policy).
          auto it = std::find_if(batches.begin(), batches.end(), [&job](const auto& b) {
            return b.first == job.domain && b.second.size() < kBatch &&
                   b.second.front().tls_report == job.tls_report;
          });
          if (it == batches.end()) {
            batches.emplace_back(job.domain, std::vector<queue::Job>{});
            it = std::prev(batches.end());
          }
          it->second.push_back(std::move(job));
        }
        for (auto& batch : batches) {
          const std::string& domain = batch.first;
          const config::Route* route = r->cfg.route_for(domain);
          const std::string route_key = route ? route->nexthop : std::string();
          if (r->stopping || r->active >= r->cfg.relay.max_deliveries ||
              r->per_domain[domain] >= r->cfg.concurrency_for(domain) ||
              (route && route->concurrency != 0 && r->per_route.count(route_key) &&
               r->per_route.at(route_key) >= route->concurrency)) {
            held_back = true;
            continue;
          }
          for (const queue::Job& j : batch.second) r->busy.insert(j.message_id);
          ++r->per_domain[domain];
          if (route) ++r->per_route[route_key];
          ++r->active;
          started = true;
          asio::co_spawn(r->io, run_jobs(r, std::move(batch.second), route_key), asio::detached);
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
             queue::Spool& spool, logging::Logger& log, std::function<queue::Time()> now)
    : intake_(std::make_unique<Workers>("danemta-intake", 1)),
      impl_(std::make_shared<Impl>(io, intake_->context(), std::move(config), resolver, spool, log,
                                   std::move(now))) {}

Relay::~Relay() {
  stop();
  // Sessions still open on the listeners end here, unanswered. Spool and
  // AUTH calls under way finish first; what they hand back to the stopped
  // intake loop never runs.
  intake_->stop();
  impl_->pool.join();
  impl_->auth_pool.join();
  impl_->acceptors.clear();
  impl_->retired.clear();
  impl_->intake = nullptr;
  intake_.reset();  // destroys the sessions and their hold on impl_
}

namespace {

// One line of the SMTP server's log (smtp::ServerConfig::log) as an event:
// its kind and level from its leading words.
logging::Event smtpd_event(std::string_view text) {
  logging::Event e;
  const std::string line = logging::one_line(std::string(text));
  if (text.starts_with("disconnect")) {
    e.kind = "disconnect";
  } else if (text.starts_with("NOQUEUE")) {
    e.kind = "reject";
  } else if (text.find("SASL") != std::string_view::npos) {
    e.kind = "auth";
    e.level = Level::warning;
  } else if (text.starts_with("Anonymous TLS") || text.starts_with("SSL_accept")) {
    e.kind = "tls";
    e.level = text.starts_with("SSL_accept") ? Level::warning : Level::info;
  } else {
    e.kind = "smtpd";
    e.level = text.starts_with("warning:") ? Level::warning : Level::info;
  }
  e.fields["text"] = line;
  e.lines.push_back({Program::smtpd, line});
  return e;
}

// AUTH's check of a user name and password, on the relay's AUTH thread.
awaitable<Result<bool>> check_password(std::weak_ptr<Relay::Impl> weak, std::string user,
                                       std::string password) {
  const ImplPtr r = weak.lock();
  if (!r) co_return fail("the relay is stopping");
  std::shared_ptr<const auth::Credentials> credentials = r->view()->credentials;
  if (!credentials) co_return fail("no credentials file loaded");
  const std::function<bool()> check = [credentials, user, password]() {
    return credentials->verify(user, password);
  };
  co_return co_await asio::co_spawn(r->auth_pool.context(), call<bool>(check), use_awaitable);
}

smtp::Requirement requirement(config::Requirement r) {
  switch (r) {
    case config::Requirement::none:
      return smtp::Requirement::none;
    case config::Requirement::may:
      return smtp::Requirement::may;
    case config::Requirement::required:
      return smtp::Requirement::required;
  }
  return smtp::Requirement::none;
}

// The key of an [inbound] listener among the listeners: its address after
// "inbound ", so that it never collides with a [relay] listener's.
constexpr std::string_view kInbound = "inbound ";
std::string inbound_key(const std::string& address) {
  return std::string(kInbound) + address;
}

// The listener settings from the relay's current configuration, by address
// (built on the loop; the sessions run on the intake thread).
std::map<std::string, std::shared_ptr<const smtp::ServerConfig>> server_settings(const ImplPtr& r) {
  smtp::ServerConfig base;
  base.hostname = r->hostname;
  base.max_message_bytes = r->cfg.relay.max_message_bytes;
  base.max_recipients = r->cfg.relay.max_recipients;
  base.max_junk_commands = r->cfg.relay.max_junk_commands;
  base.max_connections = r->cfg.relay.max_connections;
  base.max_connections_per_client = r->cfg.relay.max_connections_per_client;
  std::weak_ptr<Relay::Impl> weak = r;
  // The logger takes lines from any thread.
  base.log = [weak](std::string_view text) {
    if (const ImplPtr p = weak.lock()) p->event(smtpd_event(text));
  };
  base.sink = [weak](const smtp::ReceivedMessage& envelope) -> std::shared_ptr<smtp::TextSink> {
    const ImplPtr p = weak.lock();
    if (!p) return nullptr;
    const std::shared_ptr<const IntakeView> v = p->view();
    const queue::Time now = p->now();
    return std::make_shared<SpoolSink>(p->spool.draft(), received_header(*v, envelope, now),
                                       missing_fields(*p, *v, now));
  };
  std::map<std::string, std::shared_ptr<const smtp::ServerConfig>> out;
  for (const config::Listener& l : r->cfg.relay.all_listeners()) {
    auto server = std::make_shared<smtp::ServerConfig>(base);
    server->tls = requirement(l.tls);
    if (l.tls != config::Requirement::none) server->tls_context = r->server_tls;
    server->auth = requirement(l.auth);
    if (l.auth != config::Requirement::none) {
      server->authenticate = [weak](std::string user, std::string password) {
        return check_password(weak, std::move(user), std::move(password));
      };
      // The credential file's sender lists, as last loaded (SIGHUP).
      server->sender_allowed = [weak](std::string_view user, std::string_view sender) {
        const ImplPtr relay = weak.lock();
        const std::shared_ptr<const auth::Credentials> credentials =
            relay ? relay->view()->credentials : nullptr;
        return credentials && credentials->may_send_as(user, sender);
      };
    }
    out[l.address] = std::move(server);
  }
  // [inbound]: anyone may connect, STARTTLS is offered, no AUTH; only
  // recipients in local_domains are accepted.
  const config::InboundConfig& in = r->cfg.inbound;
  for (const std::string& address : in.listen) {
    auto server = std::make_shared<smtp::ServerConfig>(base);
    if (!in.hostname.empty()) server->hostname = in.hostname;
    server->service = "inbound";
    server->tls = smtp::Requirement::may;
    server->tls_context = r->inbound_tls;
    server->postmaster = "postmaster@" + in.local_domains.front();
    server->check_recipient = [weak](const std::string& mailbox) -> std::string {
      const ImplPtr p = weak.lock();
      const auto at = mailbox.rfind('@');
      if (p && at != std::string::npos && p->view()->cfg.is_local_domain(mailbox.substr(at + 1)))
        return "";
      return "554 5.7.1 <" + mailbox + ">: Relay access denied";
    };
    out[inbound_key(address)] = std::move(server);
  }
  return out;
}

// Hands the intake thread a new view of the running configuration,
// certificates and credentials.
void publish_intake(const ImplPtr& r) {
  auto v = std::make_shared<IntakeView>();
  v->cfg = r->cfg;
  v->hostname = r->hostname;
  v->credentials = r->credentials;
  v->settings = server_settings(r);
  std::lock_guard lock(r->intake_mutex);
  r->intake_view = std::move(v);
}

// The STARTTLS context from [relay] tls_cert_file and tls_key_file, and a
// line that names the certificate for the log.
Result<std::pair<std::shared_ptr<asio::ssl::context>, std::string>> load_server_tls(
    const config::RelayConfig& relay) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  auto cert =
      tls::configure_server_context(context->native_handle(), relay.tls_cert_file, relay.tls_key());
  if (!cert) return tl::unexpected(cert.error());
  std::string names;
  for (const std::string& n : cert->leaf.dns_names) names += (names.empty() ? "" : ",") + n;
  if (names.empty()) names = cert->leaf.subject;
  return std::make_pair(context, "STARTTLS certificate " + names + " from " + relay.tls_cert_file +
                                     " (sha256 " + cert->sha256 + ", not after " +
                                     cert->leaf.not_after + ", " +
                                     std::to_string(cert->chain_size) + " chain certificate(s))");
}

// Reads the STARTTLS certificate and the AUTH credentials the configuration
// names (at start: an error stops the relay). Returns a line for each.
Result<std::vector<std::string>> load_files(Relay::Impl& r) {
  std::vector<std::string> notes;
  const config::RelayConfig& relay = r.cfg.relay;
  r.server_tls.reset();
  r.credentials.reset();
  if (!relay.tls_cert_file.empty()) {
    auto loaded = load_server_tls(relay);
    if (!loaded) return tl::unexpected(loaded.error());
    r.server_tls = loaded->first;
    notes.push_back(loaded->second);
  }
  if (!relay.credentials_file.empty()) {
    auto loaded = auth::Credentials::load(relay.credentials_file);
    if (!loaded) return tl::unexpected(loaded.error());
    notes.push_back("AUTH credentials for " + std::to_string(loaded->size()) + " user(s) from " +
                    relay.credentials_file);
    r.credentials = std::make_shared<const auth::Credentials>(std::move(*loaded));
  }
  return notes;
}

// The same on SIGHUP: a file that cannot be read now is refused and the one
// loaded before stays in use.
std::vector<std::string> reload_files(Relay::Impl& r) {
  std::vector<std::string> notes;
  const config::RelayConfig& relay = r.cfg.relay;
  if (relay.tls_cert_file.empty()) {
    if (r.server_tls) notes.push_back("STARTTLS certificate dropped (no tls_cert_file)");
    r.server_tls.reset();
  } else if (auto loaded = load_server_tls(relay); !loaded) {
    notes.push_back("STARTTLS certificate refused, " +
                    std::string(r.server_tls ? "the running one stays" : "STARTTLS unavailable") +
                    ": " + loaded.error().message);
  } else {
    r.server_tls = loaded->first;
    notes.push_back(loaded->second);
  }
  if (relay.credentials_file.empty()) {
    if (r.credentials) notes.push_back("AUTH credentials dropped (no credentials_file)");
    r.credentials.reset();
  } else if (auto loaded = auth::Credentials::load(relay.credentials_file); !loaded) {
    notes.push_back("AUTH credentials refused, " +
                    std::string(r.credentials ? "the running ones stay" : "AUTH unavailable") +
                    ": " + loaded.error().message);
  } else {
    notes.push_back("AUTH credentials for " + std::to_string(loaded->size()) + " user(s) from " +
                    relay.credentials_file);
    r.credentials = std::make_shared<const auth::Credentials>(std::move(*loaded));
  }
  return notes;
}

// Binds `where` and serves it. Errors name the address.
Result<void> add_listener(const ImplPtr& r, const std::string& where) {
  const bool inbound = where.starts_with(kInbound);
  auto endpoint = parse_listen_address(inbound ? where.substr(kInbound.size()) : where);
  if (!endpoint) return tl::unexpected(endpoint.error());
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(*r->intake);
  if (auto ok = listen_on(*acceptor, *endpoint, where); !ok) return tl::unexpected(ok.error());
  const std::string bound = listening_address(*acceptor);
  std::weak_ptr<Relay::Impl> weak = r;
  // Both read the relay's configuration as it is when a client connects.
  smtp::Settings settings = [weak, where]() -> std::shared_ptr<const smtp::ServerConfig> {
    const ImplPtr p = weak.lock();
    if (!p) return std::make_shared<const smtp::ServerConfig>();
    const std::shared_ptr<const IntakeView> v = p->view();
    const auto it = v->settings.find(where);
    return it != v->settings.end() ? it->second : std::make_shared<const smtp::ServerConfig>();
  };
  auto allowed = [weak, inbound](const asio::ip::address& peer) {
    const ImplPtr p = weak.lock();
    if (!p) return false;
    if (inbound) return true;  // the MX: RCPT decides (local_domains only)
    const std::string text = peer.to_string();
    const std::shared_ptr<const IntakeView> v = p->view();
    for (const config::Network& n : v->cfg.relay.allow)
      if (config::contains(n, text)) return true;
    return false;
  };
  asio::co_spawn(*r->intake,
                 smtp::listen(*acceptor, std::move(settings), r->accept, std::move(allowed)),
                 asio::detached);
  r->acceptors.push_back({where, bound, std::move(acceptor)});
  return {};
}

// Resolver::resolve as an awaitable.
auto async_resolve(dns::Resolver& resolver, std::vector<dns::Query> queries) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<dns::Answer>)>(
      [&resolver](auto handler, std::vector<dns::Query> q) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        resolver.resolve(std::move(q), [h](std::vector<dns::Answer> a) { (*h)(std::move(a)); });
      },
      use_awaitable, std::move(queries));
}

// The [inbound] STARTTLS context from what each slot serves.
Result<std::shared_ptr<asio::ssl::context>> inbound_context(const Relay::Impl& r) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  std::vector<tls::ServerKeyPair> pairs;
  for (const inbound::Slot& slot : r.inbound_slots)
    pairs.push_back({slot.served.chain_pem, slot.served.key_pem, slot.files.cert_file});
  auto loaded = tls::configure_server_context(context->native_handle(), pairs);
  if (!loaded) return tl::unexpected(loaded.error());
  return context;
}

// Loads the certificate slots (what was served before a restart stays
// served) and the STARTTLS context. Errors stop the relay.
Result<void> start_inbound(const ImplPtr& r) {
  std::vector<std::string> notes;
  auto slots = inbound::load_slots(r->cfg, true, notes);
  if (!slots) return tl::unexpected(slots.error());
  r->inbound_slots = std::move(*slots);
  auto context = inbound_context(*r);
  if (!context) return tl::unexpected(context.error());
  r->inbound_tls = *context;
  for (const std::string& n : notes) r->line(Program::master, Level::info, "", n);
  for (const inbound::Slot& slot : r->inbound_slots)
    r->line(Program::master, Level::info, "",
            "inbound STARTTLS certificate " + inbound::describe(slot.served));
  r->inbound_timer = std::make_unique<asio::steady_timer>(r->io);
  r->inbound_forced = true;
  return {};
}

// The guard's figures for /metrics.
void count_inbound(Relay::Impl& r) {
  if (r.metrics == nullptr) return;
  for (const inbound::Slot& slot : r.inbound_slots) {
    const metrics::Labels labels = {{"certificate", slot.files.cert_file}};
    r.metrics->set("danemta_inbound_certificate_expiry_timestamp_seconds", labels,
                   static_cast<double>(slot.served.leaf().not_after_epoch));
    r.metrics->set("danemta_inbound_certificate_published", labels,
                   slot.last.served_published ? 1 : 0);
    r.metrics->set("danemta_inbound_rollover_pending", labels, slot.candidate ? 1 : 0);
    r.metrics->set("danemta_inbound_rollover_blocked", labels, slot.last.expiring ? 1 : 0);
  }
}

// One look at the files and the published records; switches a slot to its
// new certificate when the rules allow (inbound/rollover.hpp).
awaitable<void> check_inbound(ImplPtr r) {
  const bool forced = r->inbound_forced;
  r->inbound_forced = false;
  for (inbound::Slot& slot : r->inbound_slots) {
    if (std::string note = inbound::refresh(slot); !note.empty())
      r->line(Program::master, Level::info, "", note);
  }
  std::vector<inbound::Lookup> lookups;
  if (!r->cfg.inbound.mx_names.empty()) {
    std::vector<dns::Answer> answers =
        co_await async_resolve(r->resolver, inbound::tlsa_queries(r->cfg.inbound));
    lookups = inbound::lookups(r->cfg.inbound, answers);
  }
  if (r->stopping) co_return;
  const std::int64_t now = r->now();
  const auto steady = std::chrono::steady_clock::now();
  const bool remind = forced || steady >= r->inbound_reminded + r->cfg.inbound.remind_interval;
  inbound::Params params;
  params.margin = r->cfg.inbound.rollover_margin;
  params.expiry_warning = r->cfg.inbound.expiry_warning;
  bool switched = false;
  for (inbound::Slot& slot : r->inbound_slots) {
    const inbound::Decision before = slot.last;
    slot.last = inbound::decide(slot.served, slot.candidate ? &*slot.candidate : nullptr, lookups,
                                slot.state, now, params);
    if (slot.last.switch_now && slot.candidate) {
      r->line(Program::master, Level::info, "",
              "inbound rollover: now serving " + inbound::describe(*slot.candidate) + " from " +
                  slot.files.cert_file + " instead of " + inbound::describe(slot.served) + ": " +
                  slot.last.why);
      slot.served = std::move(*slot.candidate);
      slot.candidate.reset();
      slot.state = {};
      slot.last = inbound::decide(slot.served, nullptr, lookups, slot.state, now, params);
      switched = true;
    }
    const bool changed = slot.last.why != before.why || slot.last.to_publish != before.to_publish ||
                         slot.last.expiring != before.expiring;
    if (remind || changed) {
      for (const std::string& line : inbound::report(slot)) {
        const Level level = line.find("expires") != std::string::npos ? Level::error
                            : line.find("publish") != std::string::npos ||
                                    line.find("no record") != std::string::npos
                                ? Level::warning
                                : Level::info;
        r->line(Program::master, level, "", line);
      }
    }
  }
  if (remind) r->inbound_reminded = steady;
  if (switched) {
    if (auto context = inbound_context(*r); context) {
      r->inbound_tls = *context;
      publish_intake(r);
    } else {
      r->line(Program::master, Level::error, "",
              "inbound rollover: cannot load the new certificate: " + context.error().message);
    }
  }
  if (auto saved = inbound::save(r->cfg.inbound_state_dir(), r->inbound_slots); !saved)
    r->line(Program::master, Level::error, "",
            "inbound rollover: cannot save its state: " + saved.error().message);
  count_inbound(*r);
}

// The guard: a check at start, every check_interval and at each reload.
awaitable<void> inbound_guard(ImplPtr r) {
  while (!r->stopping) {
    co_await check_inbound(r);
    if (r->stopping) break;
    r->inbound_timer->expires_after(r->cfg.inbound.check_interval);
    co_await r->inbound_timer->async_wait(asio::as_tuple(use_awaitable));
  }
}

}  // namespace

Result<void> Relay::start() {
  if (auto ok = tls::configure_client_context(impl_->tls_context.native_handle()); !ok) return ok;
  auto files = load_files(*impl_);
  if (!files) return tl::unexpected(files.error());
  for (const std::string& note : *files) impl_->line(Program::master, Level::info, "", note);
  // Weak: the relay holds this function, which must not keep it alive.
  std::weak_ptr<Impl> weak = impl_;
  impl_->accept = [weak](smtp::ReceivedMessage m) {
    return accept_message(weak.lock(), std::move(m));
  };
  if (impl_->cfg.inbound.enabled()) {
    auto loaded = start_inbound(impl_);
    if (!loaded) return loaded;
  }
  publish_intake(impl_);
  std::vector<std::string> listeners;
  for (const config::Listener& l : impl_->cfg.relay.all_listeners()) listeners.push_back(l.address);
  for (const std::string& l : impl_->cfg.inbound.listen) {
    if (auto endpoint = parse_listen_address(l); !endpoint) return tl::unexpected(endpoint.error());
    listeners.push_back(inbound_key(l));
  }
  // Every address is checked before any is served.
  for (const config::Listener& l : impl_->cfg.relay.all_listeners()) {
    if (auto endpoint = parse_listen_address(l.address); !endpoint)
      return tl::unexpected(endpoint.error());
  }
  for (const std::string& l : listeners) {
    if (auto added = add_listener(impl_, l); !added) {
      stop();
      return added;
    }
  }
  if (impl_->cfg.inbound.enabled()) asio::co_spawn(impl_->io, inbound_guard(impl_), asio::detached);
  asio::co_spawn(impl_->io, scheduler(impl_), asio::detached);
  asio::co_spawn(impl_->io, retention(impl_), asio::detached);
  return {};
}

std::vector<std::string> Relay::reload(config::Config next) {
  Impl& r = *impl_;
  std::vector<std::string> notes;
  // These are opened once, at start: a change waits for a restart.
  auto at_restart = [&notes](const std::string& what) {
    notes.push_back(what + " changed: takes effect when the relay is restarted");
  };
  if (next.relay.spool != r.cfg.relay.spool) at_restart("relay.spool");
  next.relay.spool = r.cfg.relay.spool;
  if (next.relay.user != r.cfg.relay.user) at_restart("relay.user");
  next.relay.user = r.cfg.relay.user;
  if (next.dns.forwarders != r.cfg.dns.forwarders ||
      next.dns.trust_anchor_file != r.cfg.dns.trust_anchor_file ||
      next.dns.timeout != r.cfg.dns.timeout)
    at_restart("dns");
  next.dns = r.cfg.dns;
  if (next.tlsrpt.enabled != r.cfg.tlsrpt.enabled || next.tlsrpt_store() != r.cfg.tlsrpt_store())
    at_restart("tlsrpt.enabled or tlsrpt.store");
  next.tlsrpt.enabled = r.cfg.tlsrpt.enabled;
  next.tlsrpt.store = r.cfg.tlsrpt.store;
  if (next.inbound.enabled() != r.cfg.inbound.enabled() ||
      next.inbound.certificates != r.cfg.inbound.certificates ||
      next.inbound_state_dir() != r.cfg.inbound_state_dir())
    at_restart("inbound (listen on or off, certificate, state_dir)");
  next.inbound.certificates = r.cfg.inbound.certificates;
  next.inbound.state_dir = r.cfg.inbound.state_dir;
  if (r.cfg.inbound.enabled() && !next.inbound.enabled()) next.inbound = r.cfg.inbound;
  if (!r.cfg.inbound.enabled() && next.inbound.enabled()) next.inbound = r.cfg.inbound;
  std::vector<std::string> listen;
  for (const config::Listener& l : next.relay.all_listeners()) listen.push_back(l.address);
  for (const std::string& l : next.inbound.listen) listen.push_back(inbound_key(l));
  r.cfg = std::move(next);
  r.sessions.set_limits(Impl::cache_limits(r.cfg));
  r.hostname = r.cfg.relay.hostname.empty() ? local_hostname() : r.cfg.relay.hostname;
  // The files are read again even when the configuration is unchanged: a
  // renewed certificate or a new user is what a SIGHUP is often for.
  for (std::string& n : reload_files(r)) notes.push_back(std::move(n));
  publish_intake(impl_);
  // The rollover guard reads the certificate files again and looks up the
  // TLSA records now, logging what it finds.
  if (r.inbound_timer) {
    r.inbound_forced = true;
    r.inbound_timer->cancel();
  }

  if (!r.stopping) {
    // Listeners: close the ones no longer configured, open the new ones.
    for (auto it = r.acceptors.begin(); it != r.acceptors.end();) {
      if (std::find(listen.begin(), listen.end(), it->where) != listen.end()) {
        ++it;
        continue;
      }
      // Closed before a listener that may take its address is opened.
      asio::ip::tcp::acceptor* closing = it->acceptor.get();
      r.on_intake([closing]() {
        boost::system::error_code ec;
        closing->close(ec);
      });
      notes.push_back("stopped listening on " + it->where);
      r.retired.push_back(std::move(it->acceptor));
      it = r.acceptors.erase(it);
    }
    for (const std::string& l : listen) {
      const bool open = std::any_of(r.acceptors.begin(), r.acceptors.end(),
                                    [&l](const Impl::Listening& a) { return a.where == l; });
      if (open) continue;
      if (auto added = add_listener(impl_, l); !added)
        notes.push_back(added.error().message + " (the other listeners go on)");
      else
        notes.push_back("listening on " + l);
    }
  }
  r.wake();
  return notes;
}

std::vector<std::string> Relay::attempts_in_flight() const {
  std::vector<std::string> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, attempt] : impl_->running) {
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now - attempt.second).count();
    out.push_back(id + ": delivery to " + attempt.first + " (running " + std::to_string(seconds) +
                  " s)");
  }
  return out;
}

void Relay::stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  impl_->sessions.close_all();
  std::vector<asio::ip::tcp::acceptor*> open;
  for (const Impl::Listening& a : impl_->acceptors) open.push_back(a.acceptor.get());
  impl_->on_intake([&open]() {
    for (asio::ip::tcp::acceptor* a : open) {
      boost::system::error_code ec;
      a->close(ec);
    }
  });
  impl_->timer.cancel();
  impl_->retention_timer.cancel();
  impl_->pace.cancel();
  if (impl_->inbound_timer) impl_->inbound_timer->cancel();
}

void Relay::set_tlsrpt_store(tlsrpt::Store* store) {
  impl_->tlsrpt_store = store;
}

void Relay::set_metrics(metrics::Registry* registry) {
  impl_->metrics = registry;
}

namespace {

// The spool's queue figures at most this old in a scrape.
constexpr std::chrono::seconds kQueueCountsMaxAge{1};

awaitable<std::string> scrape_metrics(ImplPtr r) {
  if (r->metrics == nullptr) co_return std::string();
  if (!r->queue_counting &&
      std::chrono::steady_clock::now() - r->queue_counted >= kQueueCountsMaxAge) {
    r->queue_counting = true;
    const queue::Time now = r->now();
    const std::size_t top = r->cfg.metrics.top_destinations;
    const std::function<Result<queue::QueueCounts>()> ask = [r, now, top]() {
      return r->spool.counts(now, top);
    };
    Result<queue::QueueCounts> counts = co_await r->blocking(ask);
    r->queue_counting = false;
    r->queue_counted = std::chrono::steady_clock::now();
    if (counts) {
      count_queue(*r->metrics, *counts, now);
    } else {
      forget_queue(*r->metrics);
      r->line(Program::qmgr, Level::error, "",
              "metrics: cannot read the spool: " + counts.error().message);
    }
  }
  r->metrics->set("danemta_deliveries_in_flight", {}, static_cast<double>(r->active));
  const bool writable = r->unrecorded.empty() && r->store_problem().empty();
  r->metrics->set("danemta_spool_writable", {}, writable ? 1 : 0);
  co_return r->metrics->render();
}

}  // namespace

awaitable<std::string> Relay::scrape() {
  return scrape_metrics(impl_);
}

std::string Relay::unhealthy() const {
  const Impl& r = *impl_;
  if (r.stopping) return "stopping";
  if (!r.unrecorded.empty())
    return "spool not writable: results of " + std::to_string(r.unrecorded.size()) +
           " message(s) held in memory, deliveries paused";
  if (const std::string problem = r.store_problem(); !problem.empty())
    return "spool not writable: " + problem;
  return "";
}

void Relay::wake() {
  impl_->wake();
}

std::size_t Relay::in_flight() const {
  return impl_->active;
}

std::vector<std::string> Relay::listening() const {
  std::vector<std::string> out;
  for (const Impl::Listening& a : impl_->acceptors) out.push_back(a.bound);
  return out;
}

}  // namespace danemta::relay
