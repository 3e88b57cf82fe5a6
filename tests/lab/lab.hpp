// The lab from C++: a signed DNS world served by NSD on a loopback port, built
// from a declarative JSON description (tests/lab/README.md) by tests/lab/lab.py.
#pragma once

#include <cstdint>
#include <string>

namespace danemta::lab {

class World {
 public:
  // Builds, signs and serves the world described by `spec_json`. Throws
  // std::runtime_error carrying lab.py's error output when that fails.
  explicit World(const std::string& spec_json);
  ~World();  // stops NSD and removes the world's directory
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const std::string& dir() const { return dir_; }
  std::uint16_t port() const { return port_; }
  // "127.0.0.1@PORT": the forwarder to give libunbound / `danemta check --resolver`.
  const std::string& resolver() const { return resolver_; }
  // The lab root's KSK (DNSKEY, zone-file syntax): the trust anchor.
  const std::string& trust_anchor_file() const { return trust_anchor_file_; }

  // Re-signs the world from a changed spec (the same zones; keys, port and
  // trust anchor stay) and returns once NSD serves the new zones: how a test
  // publishes or withdraws a record. Throws std::runtime_error on failure.
  void update(const std::string& spec_json);

 private:
  std::string dir_;
  std::uint16_t port_ = 0;
  std::string resolver_;
  std::string trust_anchor_file_;
};

}  // namespace danemta::lab
