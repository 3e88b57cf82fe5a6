// The rollover guard's files: the certificate slots of [inbound] (one per
// [[inbound.certificate]]), the copy of what each serves and the sightings
// of published records, kept in [inbound] state_dir so that a restart
// neither resets nor skips a wait. Also the TLSA queries the guard asks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "inbound/rollover.hpp"

namespace danemta::inbound {

// A chain and its key from PEM text: the key must belong to the leaf.
// `what` names the source in errors.
Result<Chain> read_chain(const std::string& chain_pem, const std::string& key_pem,
                         const std::string& what);
// The same from an [[inbound.certificate]]'s files.
Result<Chain> read_files(const config::InboundCertificate& files);

struct Slot {
  config::InboundCertificate files;
  std::string id;  // stable across restarts: from cert_file
  Chain served;
  std::optional<Chain> candidate;  // the files, when they differ from `served`
  std::string files_problem;       // the files cannot be read now
  SlotState state;
  Decision last;  // the latest decision
};

// The slots of `cfg`: each serves the copy kept in the state directory when
// there is one, else its files (and, when `write`, the copy is made).
// Errors: a file that cannot be read and has no copy, an unwritable state
// directory. `notes` gets a line per slot worth logging.
Result<std::vector<Slot>> load_slots(const config::Config& cfg, bool write,
                                     std::vector<std::string>& notes);

// Reads the slot's files again; they become the candidate when they differ
// from what is served. Returns a line to log when that changed.
std::string refresh(Slot& slot);

// Writes the sightings (atomically) and the served copies of `slots`.
Result<void> save(const std::string& state_dir, const std::vector<Slot>& slots);

// _PORT._tcp.NAME TLSA for every [inbound] mx_names entry, in order.
std::vector<dns::Query> tlsa_queries(const config::InboundConfig& in);
std::vector<Lookup> lookups(const config::InboundConfig& in,
                            const std::vector<dns::Answer>& answers);

// The slot's certificate for the log: "ECDSA P-256 mx1.example.org (sha256
// ab12..., not after ...)".
std::string describe(const Chain& chain);

// The slot's decision as log lines (what to publish included).
std::vector<std::string> report(const Slot& slot);

}  // namespace danemta::inbound
