// Several lab receivers on one test's own loopback addresses (127.0.NET.HOST,
// or ::1 for host 0) sharing one port, since the TLSA owner name carries the
// port. Each test picks its own NET so parallel tests never collide.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lab/receiver.hpp"

namespace danemta::lab {

class Receivers {
 public:
  explicit Receivers(int net) : net_(net) {}

  Receiver& add(int host, Behaviour b) {
    b.address = host == 0 ? "::1" : ip(host);
    b.port = port_;
    list_.push_back(std::make_unique<Receiver>(std::move(b)));
    if (port_ == 0) port_ = list_.back()->port();
    return *list_.back();
  }
  std::uint16_t port() const { return port_; }
  std::string ip(int host) const {
    return "127.0." + std::to_string(net_) + "." + std::to_string(host);
  }

  // A normal server with `chain`, greeting as `hostname`.
  static Behaviour with_chain(Chain chain, const std::string& hostname) {
    Behaviour b;
    b.hostname = hostname;
    b.chain = std::move(chain);
    return b;
  }

  // "_PORT._tcp.OWNER TLSA RDATA", a lab record line.
  std::string tlsa_line(const std::string& owner, const std::string& rdata) const {
    return "_" + std::to_string(port_) + "._tcp." + owner + " TLSA " + rdata;
  }

 private:
  int net_;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<Receiver>> list_;
};

}  // namespace danemta::lab
