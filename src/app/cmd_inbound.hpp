// The inbound MX from the command line: `danemta tlsa --rollover NEW.pem`
// (the records to publish for a new certificate, and where the rollover
// guard stands) and `danemta check --self` (the inbound checks against this
// server's own [inbound] configuration).
#pragma once

#include <string>

#include "app/cmd_check.hpp"
#include "config/config.hpp"

namespace danemta::app {

// Prints the TLSA records that let NEW_PEM (a certificate or chain, leaf
// first) replace the [inbound] certificate of its key type, whether each is
// published at every MX name, and the guard's verdict. 0: it can be served
// now; 1: not yet (publish, or wait); 2: local error.
int run_tlsa_rollover(const config::Config& cfg, const std::string& new_pem);

// For each [inbound] certificate: TLSA published (DNSSEC-secure) for every
// MX name, matching the served and the next certificate, the rollover's
// readiness and the served certificate's expiry; then `danemta check` for
// each local domain (MX, DNSSEC chain, TLSA, and the live servers). 0: all
// good; 1: a problem (each printed); 2: local error.
int run_check_self(const config::Config& cfg, const CheckOptions& options);

}  // namespace danemta::app
