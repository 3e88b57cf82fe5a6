// The deadline of one whole operation on a connection (a reply of many
// reads, a write, a handshake), for the SMTP client and server sessions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/steady_timer.hpp>

namespace danemta::smtp {

class Watchdog {
 public:
  explicit Watchdog(const boost::asio::any_io_executor& executor) : timer_(executor) {}

  // At `deadline`, unless disarm() or another arm() came first, fired()
  // becomes true and `expire` runs (it cancels the connection's pending
  // I/O, which then completes with an error). The watchdog must be part of
  // `owner`: nothing happens once the owner is gone, and a late expiry of an
  // earlier arming is ignored.
  void arm(std::chrono::steady_clock::time_point deadline, std::weak_ptr<void> owner,
           std::function<void()> expire) {
    const std::uint64_t generation = ++generation_;
    fired_ = false;
    timer_.expires_at(deadline);
    timer_.async_wait([this, owner = std::move(owner), generation,
                       expire = std::move(expire)](const boost::system::error_code& ec) {
      if (ec) return;
      const std::shared_ptr<void> alive = owner.lock();
      if (!alive || generation_ != generation) return;
      fired_ = true;
      expire();
    });
  }

  void disarm() {
    ++generation_;
    timer_.cancel();
  }

  // Whether the last arming expired.
  bool fired() const { return fired_; }

 private:
  boost::asio::steady_timer timer_;
  std::uint64_t generation_ = 0;
  bool fired_ = false;
};

}  // namespace danemta::smtp
