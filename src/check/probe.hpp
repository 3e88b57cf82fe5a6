// The live half of `danemta check`: for every usable MX host and every
// address, the same session set-up delivery uses (connect, EHLO, STARTTLS,
// DANE verification), stopped before MAIL FROM, with what an admin needs to
// see: protocol, cipher, chain, which TLSA record matched at which depth.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "dane/plan.hpp"
#include "dane/tls_glue.hpp"
#include "smtp/client.hpp"

namespace danemta::check {

struct RecordMatch {
  dns::TlsaRecord record;
  std::vector<int> depths;  // chain depths whose certificate matches the record
};

struct AddressProbe {
  std::string host;
  std::string address;
  bool connected = false;
  std::string greeting;  // first line of the server's greeting
  bool starttls_offered = false;
  bool tls = false;
  tls::SessionFacts facts;
  std::vector<RecordMatch> matches;  // per usable TLSA record
  int matched_depth = -1;            // depth OpenSSL's DANE verification matched
  std::optional<dns::TlsaRecord> matched;
  std::optional<bool> names_ok;  // DANE-TA: leaf names one of the reference names
  // DANE host: a record matches now and another usable one is published, so
  // one certificate or key can change without breaking delivery.
  bool rollover_ready = false;
  dane::Authentication authentication = dane::Authentication::none;
  std::optional<dane::Outcome> failure;  // the relay would not send mail here
  bool unreachable = false;              // connection or SMTP failure (no policy verdict)
  std::string detail;
  std::vector<std::string> warnings;
};

struct ProbeOptions {
  std::string helo_name = "localhost";
  smtp::ClientConfig client;
  std::int64_t now = 0;                      // seconds since the epoch, for expiry warnings
  std::int64_t expiry_warning = 14 * 86400;  // warn when a certificate expires sooner
  // Optional hooks (`danemta web`: its progress and its target policy).
  // `refuse` is asked before each address is probed: a non-empty answer is
  // why it is not, and the address is reported unreachable with that detail.
  std::function<std::string(const std::string& host, const std::string& address)> refuse;
  // Called with each address's finished probe.
  std::function<void(const AddressProbe&)> probed;
};

// Probes every address of every host that is not unusable, in MX order.
// Result: one vector per host of `plan.hosts` (empty for unusable hosts).
boost::asio::awaitable<std::vector<std::vector<AddressProbe>>> probe_destination(
    boost::asio::ssl::context& tls_context, dane::DestinationPlan plan, ProbeOptions options);

// Diagnostics that need no network: which records match which depths of a
// chain, expiry and rollover warnings. Exposed for tests.
void annotate(AddressProbe& probe, const dane::HostPlan& host, const ProbeOptions& options);

}  // namespace danemta::check
