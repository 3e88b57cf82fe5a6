#include "app/cmd_relay.hpp"
#include "app/input.hpp"
#include "app/submit.hpp"
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

#include <nlohmann/json.hpp>

#include "dns/unbound_resolver.hpp"
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
  relay::Relay relay(io, cfg, **resolver, **spool, std::cout, wall_clock);
  relay.set_tlsrpt_store(reports.get());
  if (auto started = relay.start(); !started) {
    std::cerr << "danemta relay: " << started.error().message << "\n";
    return 2;
  }
  std::string where;
  for (const std::string& l : relay.listening()) where += (where.empty() ? "" : ", ") + l;
  // Daemon notices follow [relay] log_format like the relay's own lines.
  auto notice = [&cfg](const std::string& text) {
    if (cfg.relay.log_json)
      std::cout << nlohmann::json{{"time", utc_time(wall_clock(), "%Y-%m-%dT%H:%M:%SZ")},
                                  {"event", "notice"},
                                  {"text", text}}
                       .dump()
                << std::endl;
    else
      std::cout << text << std::endl;
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
