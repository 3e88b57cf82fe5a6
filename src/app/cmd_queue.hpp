// `danemta queue ...`: the operator's view of the spool and hand on it, run
// next to a running relay (SQLite serialises the writers; the relay sees a
// change at its next scheduler pass). docs/operations.md, "The queue";
// the JSON forms in docs/queue-json.md.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace CLI {
class App;
}

namespace danemta::app {

struct QueueOptions {
  // list, show, summary, hold, release, requeue, flush, delete, purge
  std::string action;
  std::vector<std::string> ids;         // queue ids ("-": read more from standard input)
  std::vector<std::string> domains;     // --domain
  std::vector<std::string> recipients;  // --recipient
  bool all = false;                     // --all
  bool json = false;                    // --json
  bool body = false;                    // show --body: the stored message itself
  bool held = false;                    // summary --held: the recipients on hold
};

// Adds `queue` and its subcommands to `app`; parsing fills `options`
// (`action` names the subcommand given).
CLI::App* add_queue_command(CLI::App& app, QueueOptions& options);

// Checks the options (exit status 2 and one line on standard error when they
// do not fit together) and runs the action. Exit status 0, 1 when a queue id
// names no message, 2 for usage and storage errors.
int run_queue(const config::Config& cfg, QueueOptions options);

}  // namespace danemta::app
