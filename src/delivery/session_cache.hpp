// Sessions kept open between delivery attempts (DESIGN.md section 8: a TLS
// handshake costs more than the rest of a delivery), without weakening DANE:
// a parked session is handed only to an attempt whose plan for that host and
// address is the one the session was authenticated under (same next hop,
// port, TLS policy and requirement, SNI, reference names and usable TLSA
// records). Any change in DNS or configuration changes the key, and the
// session is not used. Parked sessions are closed after `idle` without use
// and are not reused once `max_age` has passed since they were opened.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "dane/plan.hpp"
#include "delivery/session.hpp"

namespace danemta::smtp {
class Client;
}

namespace danemta::delivery {

// The identity a session was authenticated under: equal keys mean an
// identical plan for this host and address.
std::string session_key(const dane::DestinationPlan& plan, const dane::HostPlan& host,
                        const std::string& address, const std::string& helo_name);

struct ParkedSession {
  std::unique_ptr<smtp::Client> client;
  SessionSetup setup;
  std::chrono::steady_clock::time_point opened;
  std::size_t transactions = 0;  // messages it has carried so far
};

class SessionCache {
 public:
  struct Limits {
    std::chrono::steady_clock::duration idle = std::chrono::seconds(2);
    std::chrono::steady_clock::duration max_age = std::chrono::seconds(300);
    std::size_t max_sessions = 100;  // parked at once; the oldest is closed beyond
  };
  SessionCache(boost::asio::io_context& io, Limits limits);
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // A parked session for `key` (the most recently parked), or nullopt.
  std::optional<ParkedSession> take(const std::string& key);
  // Parks a session that is ready for another transaction. One past its
  // max_age is closed with QUIT instead.
  void park(const std::string& key, ParkedSession session);
  // Closes every parked session (QUIT, not awaited) and parks no more.
  void close_all();
  void set_limits(Limits limits) { limits_ = limits; }

  std::size_t parked() const;
  std::size_t reused() const { return reused_; }

 private:
  struct Entry;
  void expire();
  void arm();

  boost::asio::io_context& io_;
  Limits limits_;
  std::shared_ptr<std::list<Entry>> entries_;
  std::shared_ptr<bool> closed_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::size_t reused_ = 0;
};

}  // namespace danemta::delivery
