#include "app/cmd_relay.hpp"
#include "app/input.hpp"
#include "base/system.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <optional>

#include "dns/unbound_resolver.hpp"
#include "logging/logger.hpp"
#include "queue/spool.hpp"
#include "relay/relay.hpp"
#include "smtp/client.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::app {

namespace asio = boost::asio;

namespace {

queue::Time wall_clock() {
  return static_cast<queue::Time>(std::time(nullptr));
}

std::string time_text(queue::Time t) {
  return t == 0 ? "-" : utc_time(t, "%Y-%m-%d %H:%M:%S");
}

// The host name in the log's syslog-style prefix: the relay's own name.
std::string log_hostname(const config::Config& cfg) {
  return cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;
}

// Stops the loop once no attempt is in flight, or after `grace`.
void drain(asio::io_context& io, relay::Relay& relay, std::shared_ptr<asio::steady_timer> timer,
           std::chrono::steady_clock::time_point deadline) {
  if (relay.in_flight() == 0 || std::chrono::steady_clock::now() >= deadline) {
    io.stop();
    return;
  }
  timer->expires_after(std::chrono::milliseconds(100));
  timer->async_wait([&io, &relay, timer, deadline](const boost::system::error_code&) {
    drain(io, relay, timer, deadline);
  });
}

}  // namespace

int run_relay(const config::Config& cfg) {
  auto spool = queue::open_sqlite_spool(cfg.relay.spool);
  if (!spool) {
    std::cerr << "danemta relay: " << spool.error().message << "\n";
    return 2;
  }
  asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta relay: " << resolver.error().message << "\n";
    return 2;
  }
  std::unique_ptr<tlsrpt::Store> reports;
  if (cfg.tlsrpt.enabled) {
    auto store = tlsrpt::open_sqlite_store(cfg.tlsrpt_store());
    if (!store) {
      std::cerr << "danemta relay: " << store.error().message
                << " (set [tlsrpt] store, or enabled = false)\n";
      return 2;
    }
    reports = std::move(*store);
  }
  logging::Logger log(logging::options_for(cfg.relay, log_hostname(cfg)), std::cout);
  relay::Relay relay(io, cfg, **resolver, **spool, log, wall_clock);
  relay.set_tlsrpt_store(reports.get());
  if (auto started = relay.start(); !started) {
    std::cerr << "danemta relay: " << started.error().message << "\n";
    return 2;
  }
  std::string where;
  for (const std::string& l : relay.listening()) where += (where.empty() ? "" : ", ") + l;
  // Daemon notices go to the relay's log like its own lines.
  auto notice = [&log](const std::string& text) {
    log.write(logging::notice(logging::Program::master, logging::Level::info, "", text));
  };
  notice("danemta relay: listening on " + where + ", spool " + cfg.relay.spool);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  auto timer = std::make_shared<asio::steady_timer>(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    notice(std::string("danemta relay: ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", " +
           std::to_string(relay.in_flight()) + " attempt(s) in flight; stopping");
    relay.stop();
    // Attempts cut short stay pending in the spool and are retried later.
    drain(io, relay, timer, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  });
  io.run();
  notice("danemta relay: stopped");
  return 0;
}

int run_queue(const config::Config& cfg, const QueueOptions& o) {
  auto opened = queue::open_sqlite_spool(cfg.relay.spool);
  if (!opened) {
    std::cerr << "danemta queue: " << opened.error().message << "\n";
    return 2;
  }
  queue::Spool& spool = **opened;

  auto print = [](const queue::MessageInfo& m) {
    std::cout << std::left << std::setw(16) << m.id << " " << std::right << std::setw(9) << m.size
              << "  " << time_text(m.received_at) << "  <" << m.mail_from << ">\n";
    for (const queue::RecipientStatus& r : m.recipients) {
      std::cout << "    <" << r.address << ">  " << queue::to_string(r.state)
                << "  attempts=" << r.attempts;
      if (r.state == queue::RecipientState::pending)
        std::cout << "  next=" << time_text(r.next_attempt_at);
      if (!r.last_dsn.empty()) std::cout << "  " << r.last_dsn;
      if (!r.last_outcome.empty()) std::cout << " " << r.last_outcome;
      if (!r.last_diagnostic.empty()) std::cout << ": " << r.last_diagnostic;
      std::cout << "\n";
    }
  };

  if (o.action == "list") {
    auto all = spool.list();
    if (!all) {
      std::cerr << "danemta queue: " << all.error().message << "\n";
      return 2;
    }
    std::size_t pending = 0;
    for (const queue::MessageInfo& m : *all) {
      print(m);
      if (!m.finished()) ++pending;
    }
    std::cout << "-- " << all->size() << " message(s), " << pending << " with pending recipients\n";
    return 0;
  }
  if (o.action == "show") {
    auto m = spool.info(o.id);
    if (!m) {
      std::cerr << "danemta queue: " << m.error().message << "\n";
      return 2;
    }
    if (!*m) {
      std::cerr << "danemta queue: no message " << o.id << "\n";
      return 1;
    }
    print(**m);
    return 0;
  }
  if (o.action == "flush") {
    auto n = spool.flush(o.id, wall_clock());
    if (!n) {
      std::cerr << "danemta queue: " << n.error().message << "\n";
      return 2;
    }
    std::cout << *n << " recipient(s) due now; a running relay picks them up within seconds\n";
    return 0;
  }
  if (o.action == "delete") {
    auto gone = spool.remove(o.id);
    if (!gone) {
      std::cerr << "danemta queue: " << gone.error().message << "\n";
      return 2;
    }
    if (!*gone) {
      std::cerr << "danemta queue: no message " << o.id << "\n";
      return 1;
    }
    std::cout << o.id << ": deleted\n";
    // Postfix's postsuper logs deletions; with [relay] log = "syslog" this
    // line joins the relay's log (on standard output it would reach only the
    // operator's terminal, which has the line above).
    if (cfg.relay.log == config::RelayConfig::LogTo::syslog) {
      logging::Logger log(logging::options_for(cfg.relay, log_hostname(cfg)), std::cout);
      logging::Event e;
      e.id = o.id;
      e.kind = "deleted";
      e.lines.push_back({logging::Program::postsuper, o.id + ": removed"});
      log.write(e);
    }
    return 0;
  }
  if (o.action == "purge") {
    auto n = spool.purge_finished();
    if (!n) {
      std::cerr << "danemta queue: " << n.error().message << "\n";
      return 2;
    }
    std::cout << *n << " finished message(s) removed\n";
    return 0;
  }
  std::cerr << "danemta queue: unknown action " << o.action << "\n";
  return 2;
}

namespace {

boost::asio::awaitable<Result<std::string>> submit(std::string address, std::uint16_t port,
                                                   std::string helo, smtp::Envelope env,
                                                   std::string data) {
  auto executor = co_await boost::asio::this_coro::executor;
  auto& io = static_cast<asio::io_context&>(executor.context());
  smtp::ClientConfig cc;
  cc.connect = cc.greeting = cc.ehlo = std::chrono::seconds(30);
  smtp::Client client(io, cc);
  auto greeting = co_await client.connect(address, port);
  if (!greeting) co_return fail(greeting.error().to_string());
  auto caps = co_await client.ehlo(helo);
  if (!caps) co_return fail(caps.error().to_string());
  auto sent = co_await client.send(env, data);
  if (!sent) co_return fail(sent.error().to_string(), sent.error().severity());
  co_await client.quit();
  for (const smtp::RecipientResult& r : sent->recipients)
    if (!r.delivered())
      co_return fail("<" + r.address + ">: " + r.reply.to_string(),
                     r.reply.permanent() ? Severity::permanent : Severity::transient);
  co_return sent->data_reply ? sent->data_reply->to_string() : std::string("accepted");
}

}  // namespace

int run_send(const config::Config& cfg, const SendOptions& o) {
  if (o.recipients.empty()) {
    std::cerr << "danemta send: give at least one recipient\n";
    return 2;
  }
  std::string data;
  auto read = read_message(o.message_file);
  if (!read) {
    std::cerr << "danemta send: cannot read " << o.message_file << "\n";
    return 2;
  }
  data = std::move(*read);
  const std::string& listen = cfg.relay.listen.front();
  std::string host;
  std::string port;
  if (listen.front() == '[') {
    auto close = listen.find(']');
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    host = listen.substr(0, listen.rfind(':'));
    port = listen.substr(listen.rfind(':') + 1);
  }
  asio::io_context io;
  std::optional<Result<std::string>> result;
  smtp::Envelope env{o.from, o.recipients};
  asio::co_spawn(
      io,
      submit(host, static_cast<std::uint16_t>(std::stoi(port)), "localhost", env, std::move(data)),
      [&result](std::exception_ptr e, Result<std::string> r) {
        if (!e) result = std::move(r);
      });
  io.run();
  if (!result) {
    std::cerr << "danemta send: the submission did not complete\n";
    return 2;
  }
  if (!*result) {
    std::cerr << "danemta send: " << listen << ": " << result->error().message << "\n";
    return result->error().severity == Severity::permanent ? 1 : 2;
  }
  std::cout << **result << "\n";
  return 0;
}

}  // namespace danemta::app
