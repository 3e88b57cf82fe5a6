// `danemta relay` and `danemta send`: the daemon and the local submission
// client (the queue tools are in cmd_queue.hpp).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace danemta::app {

// Runs until SIGINT/SIGTERM; logs one line per event on stdout.
// `config_path`: the file SIGHUP reloads ("" when none was given).
int run_relay(const config::Config& cfg, const std::string& config_path);

struct SendOptions {
  std::string from;
  std::vector<std::string> recipients;
  std::string message_file;  // "" or "-": standard input
};
// Submits one message to the local relay (the first [relay] listen address).
int run_send(const config::Config& cfg, const SendOptions& options);

}  // namespace danemta::app
