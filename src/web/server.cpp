// The HTTP side of `danemta web` and the checks it runs. Bounded like the
// metrics server (metrics/server.cpp): connections at once, header size,
// time per request, requests per connection; plus the check limits.
#include "web/server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "base/listen.hpp"
#include "base/system.hpp"
#include "check/probe.hpp"
#include "check/report.hpp"
#include "dane/plan.hpp"
#include "dns/resolver.hpp"
#include "web/guard.hpp"
#include "web/html.hpp"

namespace danemta::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxConnections = 64;
constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
constexpr std::chrono::seconds kTimeout{15};  // read a request, write a response or an event
constexpr std::size_t kMaxRequests = 100;

// One check in progress: what it has done so far, for whoever follows it.
struct Job {
  explicit Job(asio::any_io_executor ex) : signal(ex), wake(ex) {}
  std::string domain;
  std::uint16_t port = 25;
  std::string client;  // who started it (the rate limit's client)
  std::vector<std::string> steps;
  std::optional<check::Report> report;
  std::string error;  // the check did not complete: why
  bool done = false;
  asio::steady_timer signal;  // cancelled on every change
  // Its slot of max_concurrent, claimed by admit(): given back once, by
  // release_slot(), when the check ends or is abandoned.
  bool holds_slot = false;
  std::size_t followers = 0;  // /events streams and /api/check requests waiting for it
  // The last follower left before the end: no further address is probed.
  bool cancelled = false;
  asio::steady_timer wake;               // run_job waits on it for the plan
  std::optional<std::size_t> addresses;  // to probe, once the plan is known
  std::size_t skipped = 0;               // of them, not probed because the visitor left

  void push(std::string line) {
    for (char& c : line)
      if (c == '\r' || c == '\n') c = ' ';
    steps.push_back(std::move(line));
    signal.cancel();
  }
  void finish() {
    done = true;
    signal.cancel();
  }
};
using JobPtr = std::shared_ptr<Job>;

std::string describe(const dns::Answer& a) {
  std::string s = std::string(dns::to_string(a.qtype)) + " " + a.qname + ": " +
                  std::string(dns::to_string(a.security));
  if (a.security == dns::Security::bogus || a.security == dns::Security::indeterminate) {
    if (!a.why.empty()) s += " (" + a.why + ")";
    return s;
  }
  if (a.nxdomain) return s + ", no such name";
  if (!a.havedata) return s + ", no records";
  std::size_t n = a.mx.size() + a.addresses.size() + a.tlsa.size() + a.txt.size();
  if (!a.addresses.empty()) {
    s += ",";
    for (const std::string& x : a.addresses) s += " " + x;
    return s;
  }
  return s + ", " + std::to_string(n) + (n == 1 ? " record" : " records");
}

std::string describe(const check::AddressProbe& p) {
  std::string s = p.host + " [" + p.address + "]: ";
  if (!p.connected) return s + (p.detail.empty() ? "not reached" : p.detail);
  if (!p.starttls_offered)
    s += "no STARTTLS";
  else if (p.tls)
    s += "STARTTLS, " + p.facts.protocol + " " + p.facts.cipher;
  else
    s += "STARTTLS offered, TLS failed";
  if (p.matched) s += ", DANE match at depth " + std::to_string(p.matched_depth);
  if (p.failure) s += ", " + std::string(dane::info(*p.failure).name);
  return s;
}

// Forwards to the real resolver and reports every answer to the job: the
// check's DNS steps, without a hook in the planner.
class ProgressResolver : public dns::Resolver {
 public:
  ProgressResolver(dns::Resolver& inner, JobPtr job) : inner_(inner), job_(std::move(job)) {}
  void resolve(std::vector<dns::Query> queries,
               std::function<void(std::vector<dns::Answer>)> done) override {
    inner_.resolve(std::move(queries),
                   [job = job_, done = std::move(done)](std::vector<dns::Answer> answers) {
                     for (const dns::Answer& a : answers) job->push(describe(a));
                     done(std::move(answers));
                   });
  }

 private:
  dns::Resolver& inner_;
  JobPtr job_;
};

}  // namespace

struct Server::State {
  State(asio::io_context& io, const config::Config& c, dns::Resolver& r, asio::ssl::context& p,
        asio::ssl::context* h)
      : acceptor(io),
        cfg(c),
        web(cfg.web),
        resolver(r),
        probe_tls(p),
        https(h),
        limiter(c.web.client_checks, c.web.client_window),
        helo(c.helo_name.empty() ? local_hostname() : c.helo_name) {}
  tcp::acceptor acceptor;
  std::function<void(const std::string&)> log;
  config::Config cfg;
  const config::WebConfig& web;
  dns::Resolver& resolver;
  asio::ssl::context& probe_tls;
  asio::ssl::context* https;
  RateLimiter limiter;
  std::string helo;
  std::size_t running = 0;  // checks in progress
  std::size_t connections = 0;
  std::set<beast::tcp_stream*> open;
  bool stopped = false;
};

namespace {

using StatePtr = std::shared_ptr<Server::State>;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Refusal {
  http::status status;
  std::string text;
  std::int64_t retry_after = 0;
};

// Whether a check for `client` may start now; `take` counts it and claims
// a slot when it may.
std::optional<Refusal> admit(Server::State& s, const std::string& client, bool take) {
  if (s.running >= s.web.max_concurrent)
    return Refusal{http::status::service_unavailable,
                   "The checker is busy (" + std::to_string(s.running) +
                       " checks are running). Please try again in a minute.",
                   60};
  const std::string key = client_key(client);
  const auto now = steady::now();
  if (take ? !s.limiter.take(key, now) : s.limiter.limited(key, now))
    return Refusal{http::status::too_many_requests,
                   "Too many checks from your address: at most " +
                       std::to_string(s.web.client_checks) + " per " +
                       std::to_string(s.web.client_window.count()) + " seconds. Try again in " +
                       std::to_string(s.limiter.retry_after(key, now)) + " seconds.",
                   s.limiter.retry_after(key, now)};
  if (take) ++s.running;
  return std::nullopt;
}

void release_slot(Server::State& s, Job& job) {
  if (!job.holds_slot) return;
  job.holds_slot = false;
  --s.running;
}

// The last follower of an unfinished check left: its slot is free at once;
// run_job probes no further address and ends (after the probe it may be in).
void abandon(Server::State& s, Job& job) {
  job.cancelled = true;
  release_slot(s, job);
  job.wake.cancel();
}

// "check of example.org for 192.0.2.1 abandoned: the visitor left; 2 of 3
// addresses not probed"
std::string abandoned_line(const Job& job) {
  std::string line =
      "check of " + job.domain + " for " + job.client + " abandoned: the visitor left";
  if (!job.addresses) return line + " during the DNS lookups";
  return line + "; " + std::to_string(job.skipped) + " of " + std::to_string(*job.addresses) +
         (*job.addresses == 1 ? " address" : " addresses") + " not probed";
}

// A follower of a job (an /events stream, an /api/check request) while it
// waits: when the last one goes before the check ends, the check is
// abandoned. Not when the server stops (every frame is destroyed then).
class Follow {
 public:
  Follow(Server::State& s, JobPtr job) : s_(s), job_(std::move(job)) { ++job_->followers; }
  ~Follow() {
    if (--job_->followers == 0 && !job_->done && !job_->cancelled && !s_.stopped)
      abandon(s_, *job_);
  }
  Follow(const Follow&) = delete;
  Follow& operator=(const Follow&) = delete;

 private:
  Server::State& s_;
  JobPtr job_;
};

struct PlanWait {
  std::optional<dane::DestinationPlan> plan;
  std::optional<dane::AnswerSet> answers;
};

// One check, the same steps as `danemta check` (app/cmd_check.cpp): the
// plan, then the probes unless the plan failed. Holds a slot of
// max_concurrent (claimed by admit()) until it ends or is abandoned; an
// abandoned check logs one line when it ends.
asio::awaitable<void> run_job(StatePtr s, JobPtr job) {
  struct Slot {
    Server::State& s;
    JobPtr job;
    ~Slot() {
      release_slot(s, *job);
      if (job->cancelled && !s.stopped && s.log) s.log(abandoned_line(*job));
      job->finish();
    }
  } slot{*s, job};
  if (job->cancelled) co_return;
  const auto deadline = steady::now() + s->web.check_timeout;
  const auto limit = std::to_string(s->web.check_timeout.count());
  job->push("looking up " + job->domain + " with DNSSEC validation");

  auto resolver = std::make_shared<ProgressResolver>(s->resolver, job);
  auto wait = std::make_shared<PlanWait>();
  job->wake.expires_at(deadline);
  dane::PlanOptions plan_options{s->cfg.policy_for(job->domain), job->port};
  dane::plan_destination(
      *resolver, job->domain, plan_options,
      [wait, resolver, job](dane::DestinationPlan plan, dane::AnswerSet answers) {
        wait->plan = std::move(plan);
        wait->answers = std::move(answers);
        job->wake.cancel();
      });
  if (!wait->plan && !job->cancelled) co_await job->wake.async_wait(use_tuple);
  if (job->cancelled) co_return;
  if (!wait->plan) {
    job->error = "The DNS lookups did not complete within " + limit + " seconds.";
    co_return;
  }
  const dane::DestinationPlan plan = *wait->plan;
  if (plan.failure) {
    job->report = check::make_report(plan, *wait->answers);
    co_return;
  }

  std::size_t addresses = 0;
  for (const dane::HostPlan& host : plan.hosts)
    if (host.requirement != dane::Requirement::unusable) addresses += host.addresses.size();
  job->addresses = addresses;

  check::ProbeOptions po;
  po.helo_name = s->helo;
  po.now = static_cast<std::int64_t>(std::time(nullptr));
  auto& c = po.client;
  c.connect = c.greeting = c.ehlo = c.starttls = c.quit = s->web.probe_timeout;
  const bool allow_private = s->web.allow_private_targets;
  const std::string port = std::to_string(job->port);
  po.refuse = [job, deadline, allow_private, port, limit](const std::string& host,
                                                          const std::string& address) {
    if (job->cancelled) {
      ++job->skipped;
      return std::string("not probed: the visitor left");
    }
    if (steady::now() >= deadline)
      return "not probed: the check's time limit (" + limit + " seconds) was reached";
    if (!allow_private) {
      const std::string why = private_target(address);
      if (!why.empty())
        return "not probed: " + address + " is " + why +
               " (this service probes public addresses only)";
    }
    job->push("connecting to " + host + " [" + address + "]:" + port);
    return std::string();
  };
  po.probed = [job](const check::AddressProbe& p) { job->push(describe(p)); };
  std::vector<std::vector<check::AddressProbe>> probes =
      co_await check::probe_destination(s->probe_tls, plan, po);
  if (job->cancelled) co_return;
  job->report = check::make_report(plan, *wait->answers, std::move(probes));
}

// Starts a check admit() has let in (its slot is the job's).
JobPtr start_job(StatePtr s, asio::any_io_executor ex, std::string domain, std::uint16_t port,
                 std::string client) {
  auto job = std::make_shared<Job>(ex);
  job->domain = std::move(domain);
  job->port = port;
  job->client = std::move(client);
  job->holds_slot = true;
  asio::co_spawn(ex, run_job(s, job), asio::detached);
  return job;
}

// Waits for the job's next change (or its end, or the watch seeing the
// visitor leave).
asio::awaitable<void> next_change(Job& job) {
  job.signal.expires_at(asio::steady_timer::time_point::max());
  co_await job.signal.async_wait(use_tuple);
}

// Whether the visitor is still there while it waits for its check: one read
// on its connection, pending until the check ends (one read and one write
// at a time on a stream: the events are written meanwhile).
struct Watch {
  explicit Watch(asio::any_io_executor ex) : ended(ex) {}
  bool reading = false;      // watch() runs
  bool stopping = false;     // stop_watch() asked it to end
  bool gone = false;         // the connection closed or failed: the visitor left
  asio::steady_timer ended;  // cancelled when watch() ends
};
using WatchPtr = std::shared_ptr<Watch>;

// Reads until the connection ends (the visitor left: EOF, a reset, an
// error) or stop_watch(). What the client sends meanwhile is kept in
// `buffer` when `keep` (an HTTP client may send its next request before
// the answer: /api/check) and dropped otherwise (/events, whose connection
// closes after the stream). A full `buffer` (more than 16 KiB sent ahead of
// the answer) counts as leaving too.
template <class Stream>
asio::awaitable<void> watch(Stream& stream, beast::flat_buffer& buffer, bool keep, WatchPtr w,
                            JobPtr job) {
  while (!w->stopping) {
    const std::size_t room = buffer.max_size() - buffer.size();
    if (room == 0) {
      w->gone = true;
      break;
    }
    auto [ec, n] = co_await stream.async_read_some(
        buffer.prepare(std::min<std::size_t>(room, 4096)), use_tuple);
    buffer.commit(n);
    if (!keep) buffer.consume(buffer.size());
    if (ec) {
      if (!w->stopping) w->gone = true;
      break;
    }
  }
  w->reading = false;
  job->signal.cancel();
  w->ended.cancel();
}

template <class Stream>
void start_watch(Stream& stream, beast::flat_buffer& buffer, bool keep, const WatchPtr& w,
                 const JobPtr& job) {
  // No time limit on this read (the request's is still set): the events'
  // writes have theirs.
  beast::get_lowest_layer(stream).expires_never();
  w->reading = true;
  asio::co_spawn(stream.get_executor(), watch(stream, buffer, keep, w, job), asio::detached);
}

// Ends the watch's read and waits until watch() has returned: the stream
// may be read again, or closed.
template <class Stream>
asio::awaitable<void> stop_watch(Stream& stream, Watch& w) {
  if (!w.reading) co_return;
  w.stopping = true;
  beast::get_lowest_layer(stream).cancel();
  while (w.reading) {
    w.ended.expires_at(asio::steady_timer::time_point::max());
    co_await w.ended.async_wait(use_tuple);
  }
}

struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string content_type = "text/html; charset=utf-8";
  std::int64_t retry_after = 0;
  bool close = false;
  bool allow = false;
  bool cache = false;  // the static files
};

Reply html_reply(http::status status, std::string body) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Reply json_reply(http::status status, std::string body) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "application/json";
  return r;
}

std::string json_error(const std::string& text) {
  return nlohmann::json{{"error", text}}.dump() + "\n";
}

std::string api_link(const std::string& domain, std::uint16_t port, bool port_given) {
  return "/api/check?domain=" + domain + (port_given ? "&port=" + std::to_string(port) : "");
}

template <class Stream>
asio::awaitable<bool> respond(Stream& stream, Reply r, unsigned version, bool keep_alive,
                              bool head) {
  http::response<http::string_body> res{r.status, version};
  res.set(http::field::server, "danemta");
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, r.cache ? "max-age=300" : "no-store");
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
          "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  if (r.retry_after > 0) res.set(http::field::retry_after, std::to_string(r.retry_after));
  if (r.allow) res.set(http::field::allow, "GET, HEAD");
  res.keep_alive(keep_alive);
  beast::get_lowest_layer(stream).expires_after(kTimeout);
  if (head) {
    res.content_length(r.body.size());
    http::response<http::empty_body> header_only(std::move(res.base()));
    auto [ec, n] = co_await http::async_write(stream, header_only, use_tuple);
    co_return !ec;
  }
  res.body() = std::move(r.body);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
  co_return !ec;
}

// "event: NAME\ndata: ...\n\n", every line of `data` a data line.
std::string event(std::string_view name, std::string_view data) {
  std::string out = "event: " + std::string(name) + "\n";
  std::size_t start = 0;
  for (;;) {
    const auto nl = data.find('\n', start);
    out += "data: " + std::string(data.substr(start, nl - start)) + "\n";
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out + "\n";
}

template <class Stream>
asio::awaitable<bool> send(Stream& stream, std::string text) {
  beast::get_lowest_layer(stream).expires_after(kTimeout);
  auto [ec, n] = co_await asio::async_write(stream, asio::buffer(text), use_tuple);
  co_return !ec;
}

// The job's steps as they come, then its result, until the check ends, the
// watch sees the visitor leave or a write fails.
template <class Stream>
asio::awaitable<void> send_events(Stream& stream, Job& job, const Watch& w, std::string api) {
  std::size_t sent = 0;
  for (;;) {
    while (sent < job.steps.size() && !w.gone) {
      std::string e = event("step", job.steps[sent++]);
      if (!co_await send(stream, std::move(e))) co_return;
    }
    if (w.gone) co_return;
    if (job.done) break;
    co_await next_change(job);
  }
  std::string last =
      job.report ? event("result", render_report(*job.report, api)) : event("failed", job.error);
  co_await send(stream, std::move(last));
}

// /events: the check's steps as they come, then its result; the connection
// closes after it. The check is abandoned when the visitor closes the
// stream first (bytes it sends on it are ignored).
template <class Stream>
asio::awaitable<void> events(StatePtr s, Stream& stream, std::string target, std::string client) {
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: danemta\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
      // Reconnecting would start another check: the page closes the stream
      // itself; this only slows down a client that does not.
      "retry: 600000\n\n";
  if (!co_await send(stream, std::move(head))) co_return;
  auto domain = validate_domain(query_value(target, "domain"));
  const std::string port_text = query_value(target, "port");
  auto port = validate_port(port_text, s->web.allowed_ports);
  if (!domain || !port) {
    std::string refused = event("refused", (!domain ? domain.error() : port.error()).message);
    co_await send(stream, std::move(refused));
    co_return;
  }
  if (auto no = admit(*s, client, true)) {
    std::string refused = event("refused", no->text);
    co_await send(stream, std::move(refused));
    co_return;
  }
  const asio::any_io_executor ex = stream.get_executor();
  JobPtr job = start_job(s, ex, *domain, *port, client);
  auto w = std::make_shared<Watch>(ex);
  beast::flat_buffer dropped(4096);
  Follow follow(*s, job);
  start_watch(stream, dropped, false, w, job);
  std::string api = api_link(*domain, *port, !port_text.empty());
  co_await send_events(stream, *job, *w, std::move(api));
  co_await stop_watch(stream, *w);
}

// /api/check: the report once the check ends; nothing (the connection
// closes) when the client left first, which abandons the check.
template <class Stream>
asio::awaitable<std::optional<Reply>> api_check(StatePtr s, Stream& stream,
                                                beast::flat_buffer& buffer, std::string target,
                                                std::string client) {
  auto domain = validate_domain(query_value(target, "domain"));
  if (!domain) co_return json_reply(http::status::bad_request, json_error(domain.error().message));
  auto port = validate_port(query_value(target, "port"), s->web.allowed_ports);
  if (!port) co_return json_reply(http::status::bad_request, json_error(port.error().message));
  if (auto no = admit(*s, client, true)) {
    Reply r = json_reply(no->status, json_error(no->text));
    r.retry_after = no->retry_after;
    co_return r;
  }
  const asio::any_io_executor ex = stream.get_executor();
  JobPtr job = start_job(s, ex, *domain, *port, client);
  auto w = std::make_shared<Watch>(ex);
  {
    Follow follow(*s, job);
    start_watch(stream, buffer, true, w, job);
    while (!job->done && !w->gone) co_await next_change(*job);
    co_await stop_watch(stream, *w);
  }
  if (!job->done) co_return std::nullopt;
  if (!job->report) co_return json_reply(http::status::gateway_timeout, json_error(job->error));
  co_return json_reply(http::status::ok, check::render_json(*job->report));
}

Reply page(StatePtr s, const std::string& path, const std::string& target,
           const std::string& client) {
  if (path == "/") return html_reply(http::status::ok, form_page("", "", ""));
  if (path == "/style.css" || path == "/app.js") {
    Reply r;
    r.body = std::string(path == "/app.js" ? app_js : style_css);
    r.content_type =
        path == "/app.js" ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8";
    r.cache = true;
    return r;
  }
  if (path == "/check") {
    const std::string typed = query_value(target, "domain");
    const std::string port_text = query_value(target, "port");
    auto domain = validate_domain(typed);
    auto port = validate_port(port_text, s->web.allowed_ports);
    if (!domain || !port)
      return html_reply(http::status::bad_request,
                        form_page((!domain ? domain.error() : port.error()).message,
                                  typed.substr(0, 300), port_text.substr(0, 5)));
    if (auto no = admit(*s, client, false)) {
      Reply r = html_reply(
          no->status,
          refusal_page(no->status == http::status::too_many_requests ? "Too many checks" : "Busy",
                       no->text));
      r.retry_after = no->retry_after;
      return r;
    }
    return html_reply(http::status::ok, check_page(*domain, *port, !port_text.empty()));
  }
  return html_reply(http::status::not_found,
                    refusal_page("Not found", "There is no such page here."));
}

bool is_http_error(const error_code& ec) {
  static const error_code sample = http::error::bad_method;
  return &ec.category() == &sample.category();
}

template <class Stream>
asio::awaitable<void> serve(StatePtr s, Stream& stream, std::string client) {
  beast::flat_buffer buffer(2 * kMaxHeaderBytes);
  for (std::size_t n = 0; n < kMaxRequests && !s->stopped; ++n) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
    parser.body_limit(0);
    beast::get_lowest_layer(stream).expires_after(kTimeout);
    auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Reply refusal =
          html_reply(http::status::request_header_fields_too_large,
                     refusal_page("Request too large", "The request header is too large."));
      co_await respond(stream, std::move(refusal), 11, false, false);
      break;
    }
    if (ec && is_http_error(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      Reply refusal = html_reply(
          http::status::bad_request,
          refusal_page("Bad request", "That is not an HTTP request this server understands."));
      co_await respond(stream, std::move(refusal), 11, false, false);
      break;
    }
    if (ec) break;
    const auto& request = parser.get();
    const std::string target(request.target());
    std::string forwarded_for;
    if (!s->web.trusted_proxies.empty()) {
      for (auto [it, end] = request.equal_range("X-Forwarded-For"); it != end; ++it) {
        if (!forwarded_for.empty()) forwarded_for += ',';
        forwarded_for += std::string(it->value());
      }
    }
    const std::string who = forwarded_client(client, forwarded_for, s->web.trusted_proxies);
    const std::string path = target.substr(0, target.find('?'));
    const bool head = request.method() == http::verb::head;
    if (request.method() != http::verb::get && !head) {
      Reply r = html_reply(http::status::method_not_allowed,
                           refusal_page("Method not allowed", "Only GET and HEAD."));
      r.allow = true;
      co_await respond(stream, std::move(r), request.version(), false, false);
      break;
    }
    if (path == "/events" && !head) {
      co_await events(s, stream, target, who);
      break;
    }
    Reply r;
    if (path == "/api/check" && !head) {
      std::optional<Reply> answer = co_await api_check(s, stream, buffer, target, who);
      if (!answer) break;  // the client left
      r = std::move(*answer);
    } else {
      r = page(s, path, target, who);
    }
    const bool keep_alive = request.keep_alive() && !r.close && n + 1 < kMaxRequests;
    if (!co_await respond(stream, std::move(r), request.version(), keep_alive, head) || !keep_alive)
      break;
  }
}

struct Leave {
  Server::State& state;
  beast::tcp_stream* stream;
  ~Leave() {
    state.open.erase(stream);
    --state.connections;
  }
};

std::string peer_of(const tcp::socket& socket) {
  error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string();
}

asio::awaitable<void> session_plain(StatePtr s, tcp::socket socket) {
  const std::string client = peer_of(socket);
  beast::tcp_stream stream(std::move(socket));
  s->open.insert(&stream);
  Leave leave{*s, &stream};
  co_await serve(s, stream, client);
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

asio::awaitable<void> session_tls(StatePtr s, tcp::socket socket) {
  const std::string client = peer_of(socket);
  beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *s->https);
  beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
  s->open.insert(&lowest);
  Leave leave{*s, &lowest};
  lowest.expires_after(kTimeout);
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
  if (!ec) co_await serve(s, stream, client);
  lowest.close();
}

asio::awaitable<void> accept_loop(StatePtr s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept(use_tuple);
    if (s->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      asio::steady_timer pause(s->acceptor.get_executor());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (s->connections >= kMaxConnections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++s->connections;
    if (s->https)
      asio::co_spawn(s->acceptor.get_executor(), session_tls(s, std::move(socket)), asio::detached);
    else
      asio::co_spawn(s->acceptor.get_executor(), session_plain(s, std::move(socket)),
                     asio::detached);
  }
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, const config::Config& cfg,
                                              dns::Resolver& resolver,
                                              asio::ssl::context& probe_tls,
                                              asio::ssl::context* https,
                                              std::function<void(const std::string&)> logger) {
  auto endpoint = parse_listen_address(cfg.web.listen);
  if (!endpoint) return tl::unexpected(endpoint.error());
  auto state = std::make_shared<State>(io, cfg, resolver, probe_tls, https);
  state->log = std::move(logger);
  if (auto r = listen_on(state->acceptor, *endpoint, cfg.web.listen); !r)
    return tl::unexpected(r.error());
  asio::co_spawn(io, accept_loop(state), asio::detached);
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  stop();
}

void Server::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  error_code ignored;
  state_->acceptor.close(ignored);
  const std::set<beast::tcp_stream*> open = state_->open;
  for (beast::tcp_stream* stream : open) stream->close();
}

std::string Server::address() const {
  return listening_address(state_->acceptor);
}

}  // namespace danemta::web
