// `danemta web`: the validation test as a web page and a JSON API ([web]).
#pragma once

#include <string>

#include "config/config.hpp"

namespace danemta::app {

// Serves until SIGINT or SIGTERM. Prints "danemta web: listening on URL"
// on stdout once it accepts connections, then the server's log lines
// ("danemta web: check of D for CLIENT abandoned: ..."). Returns 0, or 2 on
// a local error (printed on stderr).
int run_web(const config::Config& cfg);

}  // namespace danemta::app
