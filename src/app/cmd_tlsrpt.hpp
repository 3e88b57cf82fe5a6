// `danemta tlsrpt send`: the daily RFC 8460 reports, from the results the
// relay recorded, to each domain's _smtp._tls rua destinations.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

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

// `danemta tlsrpt read FILE|DIR...`: the TLS reports other organisations
// sent us (RFC 8460: .json, .json.gz, report mails), summarised per sending
// organisation, policy and result type (docs/tlsrpt-read.md).
struct TlsRptReadOptions {
  std::vector<std::string> paths;  // files (read whatever their name) and directories (walked)
  bool json = false;               // docs/tlsrpt-read.md's JSON instead of the tables
  std::size_t max_files = 100000;  // files taken from directories, at most
};

// Exit: 0 every file read, 1 some file could not be read or was not a
// report (each said on standard error; the others are summarised), 2 usage.
int run_tlsrpt_read(const TlsRptReadOptions& options);

}  // namespace danemta::app
