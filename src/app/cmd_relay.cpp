#include "app/cmd_relay.hpp"
#include "app/input.hpp"
#include "app/privileges.hpp"
#include "app/submit.hpp"
#include "base/system.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <optional>
#include <random>

#include "dns/caching_resolver.hpp"
#include "dns/unbound_resolver.hpp"
#include "logging/logger.hpp"
#include "metrics/registry.hpp"
#include "metrics/server.hpp"
#include "queue/spool.hpp"
#include "relay/instruments.hpp"
#include "relay/relay.hpp"
#include "smtp/client.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::app {

namespace asio = boost::asio;

namespace {

queue::Time wall_clock() {
  return static_cast<queue::Time>(std::time(nullptr));
}

// The host name in the log's syslog-style prefix: the relay's own name.
std::string log_hostname(const config::Config& cfg) {
  return cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;
}

using Notice = std::function<void(const std::string&)>;

// Stops the loop once no attempt is in flight, or at `deadline`; then each
// attempt still running is cut off with a log line (its recipients stay
// queued and are retried at the next start).
void drain(asio::io_context& io, relay::Relay& relay, std::shared_ptr<asio::steady_timer> timer,
           std::chrono::steady_clock::time_point deadline, Notice notice) {
  if (relay.in_flight() == 0 || std::chrono::steady_clock::now() >= deadline) {
    for (const std::string& a : relay.attempts_in_flight())
      notice(a +
             " cut off by shutdown; its recipients stay queued (a message the server "
             "had already taken may be delivered again)");
    io.stop();
    return;
  }
  timer->expires_after(std::chrono::milliseconds(100));
  timer->async_wait([&io, &relay, timer, deadline, notice](const boost::system::error_code&) {
    drain(io, relay, timer, deadline, notice);
  });
}

// Runs this binary as `danemta --config PATH tlsrpt send --quiet` and logs
// each line it prints: the relay sends TLS reports with the very code the
// command uses, in a process of its own (its DNS and https work never holds
// up deliveries).
asio::awaitable<void> send_reports(std::string config_path, Notice notice) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    notice("tlsrpt: cannot run tlsrpt send: " + std::string(std::strerror(errno)));
    co_return;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execl("/proc/self/exe", "danemta", "--config", config_path.c_str(), "tlsrpt", "send",
            "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    notice("tlsrpt: cannot run tlsrpt send: " + std::string(std::strerror(errno)));
    co_return;
  }
  asio::posix::stream_descriptor pipe(co_await asio::this_coro::executor, out[0]);
  asio::streambuf buffer;
  for (;;) {
    auto [ec, n] =
        co_await asio::async_read_until(pipe, buffer, '\n', asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    std::string line(asio::buffers_begin(buffer.data()),
                     asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(n - 1));
    buffer.consume(n);
    notice("tlsrpt: " + line);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);  // its output is closed: it has ended or is ending
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    notice("tlsrpt: tlsrpt send ended with status " +
           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
           " (retried at the next run)");
}

// Runs send_reports() every `interval` at a fixed random offset into it,
// while `running` (the current configuration) keeps an interval.
asio::awaitable<void> report_schedule(std::string config_path, const config::Config& running,
                                      Notice notice, std::shared_ptr<bool> stopping) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::mt19937_64 rng(std::random_device{}());
  while (!*stopping) {
    const std::int64_t interval = running.tlsrpt.send_interval.count();
    if (interval == 0 || !running.tlsrpt.enabled) {
      timer.expires_after(std::chrono::seconds(60));  // a reload may turn it on
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    const std::int64_t max_delay =
        std::min<std::int64_t>(running.tlsrpt.send_delay_max.count(), interval - 1);
    const std::int64_t offset =
        max_delay <= 0 ? 0 : std::uniform_int_distribution<std::int64_t>(0, max_delay)(rng);
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    const std::int64_t next = (now / interval + 1) * interval + offset;
    timer.expires_after(std::chrono::seconds(next - now));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (*stopping) break;
    co_await send_reports(config_path, notice);
  }
}

constexpr std::chrono::minutes kCacheSummaryEvery{5};

// The answer cache's line (docs/logs.md): lookups, hits and evictions since
// `before`, entries now.
logging::Event dns_cache_event(const dns::CacheStats& now, const dns::CacheStats& before) {
  logging::Event e;
  e.kind = "dns-cache";
  e.fields = {{"lookups", (now.hits + now.misses) - (before.hits + before.misses)},
              {"hits", now.hits - before.hits},
              {"entries", now.entries},
              {"evictions", now.evictions - before.evictions}};
  e.lines.push_back({logging::Program::master, relay::dns_cache_summary(now, before)});
  return e;
}

// The monitoring endpoint on `listen` ([metrics] listen), serving the
// relay's figures (the answer cache's brought up to date first) and health.
Result<std::unique_ptr<metrics::Server>> open_monitor(asio::io_context& io, relay::Relay& relay,
                                                      const dns::CachingResolver& cache,
                                                      metrics::Registry& registry,
                                                      const std::string& listen) {
  metrics::Site site;
  site.metrics = [&relay, &cache, &registry]() {
    relay::count_dns_cache(registry, cache.stats());
    return relay.scrape();
  };
  site.unhealthy = [&relay]() { return relay.unhealthy(); };
  return metrics::Server::start(io, listen, std::move(site));
}

}  // namespace

int run_relay(const config::Config& cfg, const std::string& config_path) {
  logging::Logger log(logging::options_for(cfg.relay, log_hostname(cfg)), std::cout);
  // Daemon notices go to the relay's log like its own lines.
  Notice notice = [&log](const std::string& text) {
    log.write(logging::notice(logging::Program::master, logging::Level::info, "", text));
  };
  auto run_as = relay_run_as(cfg.relay.user, ::geteuid());
  if (!run_as) {
    std::cerr << "danemta relay: " << run_as.error().message << "\n";
    return 2;
  }
  // Started as root: the state directories are made for the account, the
  // databases are opened as the account (so every file they create is its
  // own), the listeners are bound as root, and then root is given up.
  const Account* owner = run_as->switch_needed ? &*run_as->account : nullptr;
  if (owner != nullptr) {
    if (auto no_new = forbid_new_privileges(); !no_new) {
      std::cerr << "danemta relay: " << no_new.error().message << "\n";
      return 2;
    }
  }
  for (const StateFile& f : state_files(cfg)) {
    if (auto made = ensure_private_directory(f.directory, owner); !made) {
      std::cerr << "danemta relay: " << f.what << ": " << made.error().message << "\n";
      return 2;
    }
  }
  for (const std::string& changed : make_state_private(cfg))
    notice("danemta relay: made private: " + changed);
  // Figures are kept from the start, served or not: an endpoint opened by a
  // reload shows them since the relay started.
  metrics::Registry registry;
  relay::declare_metrics(registry);
  asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta relay: " << resolver.error().message << "\n";
    return 2;
  }
  if (owner != nullptr) {
    if (auto as = assume(*owner); !as) {
      std::cerr << "danemta relay: " << as.error().message << "\n";
      return 2;
    }
  }
  auto hint = [owner](const std::string& path) {
    const std::string h = owner != nullptr ? ownership_hint(path, *owner) : "";
    return h.empty() ? "" : "; " + h;
  };
  auto spool = queue::open_sqlite_spool(cfg.relay.spool);
  if (!spool) {
    std::cerr << "danemta relay: " << spool.error().message << hint(cfg.relay.spool) << "\n";
    return 2;
  }
  std::unique_ptr<tlsrpt::Store> reports;
  if (cfg.tlsrpt.enabled) {
    auto store = tlsrpt::open_sqlite_store(cfg.tlsrpt_store());
    if (!store) {
      std::cerr << "danemta relay: " << store.error().message << hint(cfg.tlsrpt_store())
                << " (set [tlsrpt] store, or enabled = false)\n";
      return 2;
    }
    reports = std::move(*store);
  }
  if (owner != nullptr) {
    if (auto back = restore_root(); !back) {
      std::cerr << "danemta relay: " << back.error().message << "\n";
      return 2;
    }
  }
  dns::CachingResolver cache(
      io, **resolver,
      {.max_entries = cfg.dns.answer_cache_entries, .max_ttl = cfg.dns.answer_cache_max_ttl});
  relay::MeteredResolver metered(cache, registry);
  relay::Relay relay(io, cfg, metered, **spool, log, wall_clock);
  relay.set_tlsrpt_store(reports.get());
  relay.set_metrics(&registry);
  if (auto started = relay.start(); !started) {
    std::cerr << "danemta relay: " << started.error().message << "\n";
    return 2;
  }
  // Bound before root is given up, like the SMTP listeners.
  std::unique_ptr<metrics::Server> monitor;
  std::string monitor_listen;  // the [metrics] listen value it serves
  if (!cfg.metrics.listen.empty()) {
    auto opened = open_monitor(io, relay, cache, registry, cfg.metrics.listen);
    if (!opened) {
      std::cerr << "danemta relay: metrics: " << opened.error().message << "\n";
      return 2;
    }
    monitor = std::move(*opened);
    monitor_listen = cfg.metrics.listen;
  }
  if (owner != nullptr) {
    if (auto dropped = drop_to(*owner); !dropped) {
      std::cerr << "danemta relay: " << dropped.error().message << "\n";
      return 2;
    }
    notice("danemta relay: listeners bound as root; running as " + owner->name + " (uid " +
           std::to_string(owner->uid) + ", gid " + std::to_string(owner->gid) + ")");
  } else if (::geteuid() == 0) {
    notice("danemta relay: warning: running as root ([relay] user = \"root\")");
  }
  const std::string who =
      owner != nullptr
          ? owner->name
          : (run_as->account ? run_as->account->name : "uid " + std::to_string(::geteuid()));
  if (auto readable = check_readable_later(cfg, who); !readable) {
    std::cerr << "danemta relay: " << readable.error().message << "\n";
    return 2;
  }
  std::string where;
  for (const std::string& l : relay.listening()) where += (where.empty() ? "" : ", ") + l;
  if (monitor)
    notice("danemta relay: metrics on http://" + monitor->address() + "/metrics and /healthz");
  notice("danemta relay: listening on " + where + ", spool " + cfg.relay.spool);

  // SIGHUP: reload the configuration file, or keep the running one.
  config::Config running = cfg;
  asio::signal_set hangups(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        hangups.async_wait(on_hangup);
        if (config_path.empty()) {
          notice("danemta relay: SIGHUP: no configuration file was given; nothing to reload");
          return;
        }
        auto next = config::load(config_path);
        if (!next) {
          notice("danemta relay: SIGHUP: configuration refused, the running one stays: " +
                 next.error().message);
          return;
        }
        const std::vector<std::string> changed = config::changes(running, *next);
        // Even an unchanged file is applied: the certificate and credential
        // files it names are read again.
        if (changed.empty()) notice("danemta relay: SIGHUP: " + config_path + " unchanged");
        for (const std::string& c : changed) notice("danemta relay: reload: " + c);
        // [metrics] listen: the endpoint moves (or opens, or closes) now;
        // one that could not be opened is tried again at the next reload.
        if (next->metrics.listen != monitor_listen) {
          if (monitor) {
            notice("danemta relay: reload: metrics endpoint on " + monitor->address() + " closed");
            monitor.reset();
            monitor_listen.clear();
          }
          if (!next->metrics.listen.empty()) {
            auto opened = open_monitor(io, relay, cache, registry, next->metrics.listen);
            if (!opened) {
              notice("danemta relay: reload: metrics: " + opened.error().message);
            } else {
              monitor = std::move(*opened);
              monitor_listen = next->metrics.listen;
              notice("danemta relay: reload: metrics on http://" + monitor->address() +
                     "/metrics and /healthz");
            }
          }
        }
        running = *next;
        for (const std::string& n : relay.reload(std::move(*next)))
          notice("danemta relay: reload: " + n);
        notice("danemta relay: configuration reloaded from " + config_path);
      };
  hangups.async_wait(on_hangup);

  // TLS reports without cron (RFC 8460): yesterday's go out after midnight
  // UTC, failed https: destinations are retried every interval.
  auto stopping = std::make_shared<bool>(false);
  if (!config_path.empty())
    asio::co_spawn(io, report_schedule(config_path, running, notice, stopping), asio::detached);

  // The answer cache's figures in the log every kCacheSummaryEvery while
  // there are lookups, and once more at the end.
  dns::CacheStats summarized;
  auto summarize = [&log, &cache, &summarized]() {
    const dns::CacheStats now = cache.stats();
    if (now.hits + now.misses == summarized.hits + summarized.misses) return;
    log.write(dns_cache_event(now, summarized));
    summarized = now;
  };
  asio::steady_timer cache_summary(io);
  std::function<void(const boost::system::error_code&)> on_cache_summary =
      [&](const boost::system::error_code& ec) {
        if (ec) return;
        summarize();
        cache_summary.expires_after(kCacheSummaryEvery);
        cache_summary.async_wait(on_cache_summary);
      };
  if (cache.enabled()) {
    cache_summary.expires_after(kCacheSummaryEvery);
    cache_summary.async_wait(on_cache_summary);
  }

  asio::signal_set signals(io, SIGINT, SIGTERM);
  auto timer = std::make_shared<asio::steady_timer>(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    const auto grace = running.relay.shutdown_grace;
    notice(std::string("danemta relay: ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", " +
           std::to_string(relay.in_flight()) + " attempt(s) in flight; stopping (grace " +
           std::to_string(grace.count()) + " s)");
    hangups.cancel();
    *stopping = true;
    relay.stop();
    // Attempts cut short stay pending in the spool and are retried later.
    drain(io, relay, timer, std::chrono::steady_clock::now() + grace, notice);
  });
  io.run();
  summarize();
  notice("danemta relay: stopped");
  return 0;
}

int run_send(const config::Config& cfg, const SendOptions& o) {
  if (o.recipients.empty()) {
    std::cerr << "danemta send: give at least one recipient\n";
    return 2;
  }
  auto read = read_message(o.message_file);
  if (!read) {
    std::cerr << "danemta send: cannot read " << o.message_file << "\n";
    return 2;
  }
  const std::string where = cfg.sendmail_submit();
  Submitted s = submit_to_relay(where, {smtp::Envelope{o.from, o.recipients}},
                                std::make_shared<const std::string>(std::move(*read)));
  if (s.failure) {
    std::cerr << "danemta send: " << where << ": " << s.failure->to_string() << "\n";
    return s.failure->permanent() ? 1 : 2;
  }
  const smtp::SendResult& sent = s.results.front();
  for (const smtp::RecipientResult& r : sent.recipients) {
    if (r.delivered()) continue;
    std::cerr << "danemta send: " << where << ": <" << r.address << ">: " << r.reply.to_string()
              << "\n";
    return r.reply.permanent() ? 1 : 2;
  }
  std::cout << (sent.data_reply ? sent.data_reply->to_string() : std::string("accepted")) << "\n";
  return 0;
}

}  // namespace danemta::app
