// `danemta check DOMAIN`: the validation test, wired to the real resolver.
#pragma once

#include <chrono>
#include <string>

#include "base/result.hpp"
#include "check/report.hpp"
#include "config/config.hpp"

namespace danemta::app {

struct CheckOptions {
  std::string domain;
  bool json = false;
  bool connect = true;  // the live half: probe every MX address
  std::chrono::seconds smtp_timeout{30};
};

// Runs the check (as run_check, printing nothing). Errors are local ones
// (the resolver or TLS cannot be set up, the check did not complete).
Result<check::Report> check_report(const config::Config& cfg, const CheckOptions& options);

// Runs the check and prints the report on stdout. Returns the exit status:
// 0 mail gets the best protection the domain publishes, 1 mail would be
// deferred or refused, 2 local error (printed as one line on stderr).
int run_check(const config::Config& cfg, const CheckOptions& options);

}  // namespace danemta::app
