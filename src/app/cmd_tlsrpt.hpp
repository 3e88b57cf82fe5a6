// `danemta tlsrpt send`: the daily RFC 8460 reports, from the results the
// relay recorded, to each domain's _smtp._tls rua destinations.
#pragma once

#include <string>

#include "config/config.hpp"

namespace danemta::app {

struct TlsRptOptions {
  std::string date;    // "YYYY-MM-DD" (UTC day); empty: yesterday
  std::string domain;  // only this policy domain; empty: all
  bool print = false;  // print the JSON reports instead of sending them
  bool retry = false;  // retry failed https destinations now, whatever their backoff
  // Print only what was done or failed: no "no report", "already sent" or
  // "next attempt after" lines (the relay's own hourly runs).
  bool quiet = false;
};

// Exit: 0 every report sent (or nothing to send), 1 some submission failed,
// 2 usage or local error.
int run_tlsrpt(const config::Config& cfg, const TlsRptOptions& options);

}  // namespace danemta::app
