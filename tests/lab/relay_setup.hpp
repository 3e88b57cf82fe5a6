// A `danemta relay` under test: its config in a lab world's directory, the
// daemon as a child process, and swaks and `danemta queue` against it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receiver.hpp"
#include "lab/run.hpp"

namespace danemta::lab {

// A relay config in the world's directory, listening on a free port, with
// its spool in `spool_dir` (default: the world's directory) and `extra`
// appended to the [relay] section. `smtp_port` 0: deliver to the relay's own
// listening port (a mail loop when an MX points back at the relay).
struct RelaySetup {
  std::string config_path;
  std::string log_path;
  std::string spool_path;
  std::uint16_t listen_port;

  RelaySetup(const World& world, std::uint16_t smtp_port, const std::string& extra,
             const std::string& spool_dir = "") {
    listen_port = free_tcp_port();
    if (smtp_port == 0) smtp_port = listen_port;
    config_path = world.dir() + "/danemta.toml";
    log_path = world.dir() + "/relay.log";
    spool_path = (spool_dir.empty() ? world.dir() : spool_dir) + "/queue.db";
    std::ofstream(config_path) << "[dns]\nforwarders = [\"" << world.resolver()
                               << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                               << "\"\ntimeout_seconds = 10\n\n[delivery]\nport = " << smtp_port
                               << "\n\n[relay]\nlisten = [\"127.0.0.1:" << listen_port
                               << "\"]\nspool = \"" << spool_path
                               << "\"\nhostname = \"relay.lab.example\"\nuser = \""
                               << current_user() << "\"\n"
                               << extra;
  }

  std::unique_ptr<Process> start() const {
    auto p = std::make_unique<Process>(
        std::vector<std::string>{DANEMTA_BINARY, "--config", config_path, "relay"}, log_path);
    EXPECT_TRUE(p->wait_for_log("listening on")) << p->log();
    return p;
  }

  CommandResult swaks(const std::string& from, const std::string& to,
                      const std::string& from_ip = "127.0.0.1") const {
    return run_command("swaks --server 127.0.0.1:" + std::to_string(listen_port) +
                       " --local-interface " + from_ip + " --from " + from + " --to " + to +
                       " --header 'Subject: relay test' --body 'hello through danemta'");
  }

  CommandResult queue(const std::string& args) const {
    return run_command(std::string(DANEMTA_BINARY) + " --config " + config_path + " queue " + args);
  }
};

inline std::size_t messages(const Receiver& r) {
  std::size_t n = 0;
  for (const Session& s : r.sessions()) n += s.messages.size();
  return n;
}

inline bool wait_messages(const Receiver& r, std::size_t n,
                          std::chrono::seconds timeout = std::chrono::seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (messages(r) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

inline std::string spec(std::vector<nlohmann::json> zones) {
  return nlohmann::json{{"zones", zones}}.dump();
}

// Occurrences of `needle` in `text`.
inline std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace danemta::lab
