// `danemta tlsa`: TLSA records for a certificate, a chain or a live server.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.hpp"

namespace danemta::app {

struct TlsaOptions {
  std::string file;         // PEM certificate or chain (leaf first)
  std::string connect;      // HOST[:PORT] of a live server instead of a file
  bool starttls = true;     // --connect always uses STARTTLS (SMTP)
  std::string host;         // TLSA base domain for the owner name
  std::uint16_t port = 25;  // for the owner name _PORT._tcp.HOST
  bool port_given = false;  // otherwise the --connect port names the owner
  int usage = 3;            // 3: the leaf (DANE-EE); 2: its issuer (DANE-TA)
  int selector = 1;
  int mtype = 1;
  bool all = false;  // 3 1 1 for the leaf and 2 1 1 for the issuer
};

// Prints zone-file lines on stdout; returns 0, or 2 with one line on stderr.
int run_tlsa(const config::Config& cfg, const TlsaOptions& options);

}  // namespace danemta::app
