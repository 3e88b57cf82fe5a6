#include "inbound/guard.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <openssl/ssl.h>

#include <algorithm>
#include <memory>

#include "tls/context.hpp"

namespace danemta::inbound {

namespace {

Result<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot read " + path + ": " + std::strerror(errno), Severity::permanent);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// FNV-1a 64 of the cert_file path, in hex: a slot's stable name.
std::string slot_id(const std::string& path) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : path) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string served_path(const std::string& dir, const std::string& id) {
  return dir + "/served-" + id + ".pem";
}

Result<void> write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr)
    return fail("cannot write " + tmp + ": " + std::strerror(errno), Severity::permanent);
  ::chmod(tmp.c_str(), 0600);
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("cannot write " + path + ": " + std::strerror(errno), Severity::permanent);
  return {};
}

}  // namespace

Result<Chain> read_chain(const std::string& chain_pem, const std::string& key_pem,
                         const std::string& what) {
  // Loading both into a scratch server context checks that the key
  // belongs to the leaf, as serving them would.
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return fail("out of memory", Severity::transient);
  auto loaded = tls::configure_server_context(ctx.get(), {{chain_pem, key_pem, what}});
  if (!loaded) return tl::unexpected(loaded.error());
  auto certs = tls::parse_pem_chain(chain_pem, what);
  if (!certs) return tl::unexpected(certs.error());
  Chain c;
  for (const tls::X509Ptr& x : *certs) c.certs.push_back(tls::summarize(x.get()));
  c.fingerprint = loaded->front().sha256;
  c.chain_pem = chain_pem;
  c.key_pem = key_pem;
  return c;
}

Result<Chain> read_files(const config::InboundCertificate& files) {
  auto chain = slurp(files.cert_file);
  if (!chain) return tl::unexpected(chain.error());
  auto key = files.key_file.empty() ? chain : slurp(files.key_file);
  if (!key) return tl::unexpected(key.error());
  return read_chain(*chain, *key, files.cert_file);
}

Result<std::vector<Slot>> load_slots(const config::Config& cfg, bool write,
                                     std::vector<std::string>& notes) {
  const std::string dir = cfg.inbound_state_dir();
  if (write) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail("cannot create " + dir + ": " + ec.message(), Severity::permanent);
    ::chmod(dir.c_str(), 0700);
  }
  std::vector<Slot> slots;
  for (const config::InboundCertificate& files : cfg.inbound.certificates) {
    Slot s;
    s.files = files;
    s.id = slot_id(files.cert_file);
    const std::string copy = served_path(dir, s.id);
    if (auto text = slurp(copy); text) {
      auto chain = read_chain(*text, *text, copy);
      if (!chain) return tl::unexpected(chain.error());
      s.served = std::move(*chain);
    } else {
      auto chain = read_files(files);
      if (!chain) return tl::unexpected(chain.error());
      s.served = std::move(*chain);
      notes.push_back("inbound certificate " + describe(s.served) + " from " + files.cert_file +
                      ": first start, served as it is");
    }
    if (std::string note = refresh(s); !note.empty()) notes.push_back(note);
    slots.push_back(std::move(s));
  }
  // The sightings.
  if (auto text = slurp(dir + "/state"); text) {
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string kind, id;
      f >> kind >> id;
      auto slot =
          std::find_if(slots.begin(), slots.end(), [&id](const Slot& s) { return s.id == id; });
      if (slot == slots.end()) continue;
      if (kind == "candidate") {
        f >> slot->state.candidate;
      } else if (kind == "seen") {
        Sighting s;
        int u = 0, sel = 0, m = 0;
        std::string hex;
        f >> s.mx_name >> s.first_seen >> s.ttl >> u >> sel >> m >> hex;
        if (!f) continue;
        s.record =
            std::to_string(u) + " " + std::to_string(sel) + " " + std::to_string(m) + " " + hex;
        slot->state.seen.push_back(std::move(s));
      }
    }
  }
  if (write) {
    if (auto ok = save(dir, slots); !ok) return tl::unexpected(ok.error());
  }
  return slots;
}

std::string refresh(Slot& slot) {
  auto files = read_files(slot.files);
  if (!files) {
    const bool fresh = slot.files_problem != files.error().message;
    slot.files_problem = files.error().message;
    return fresh ? "inbound certificate files cannot be read, the served certificate stays: " +
                       files.error().message
                 : std::string();
  }
  slot.files_problem.clear();
  if (files->fingerprint == slot.served.fingerprint) {
    // The same leaf; a new chain or key PEM for it changes nothing DANE sees.
    const bool had = slot.candidate.has_value();
    slot.candidate.reset();
    return had ? "inbound certificate files of " + slot.files.cert_file +
                     " hold the served certificate again: no rollover pending"
               : std::string();
  }
  const bool fresh = !slot.candidate || slot.candidate->fingerprint != files->fingerprint;
  slot.candidate = std::move(*files);
  return fresh
             ? "inbound certificate " + describe(*slot.candidate) + " in " + slot.files.cert_file +
                   " is new: it is served once its TLSA record is published (the served one "
                   "stays: " +
                   describe(slot.served) + ")"
             : std::string();
}

Result<void> save(const std::string& dir, const std::vector<Slot>& slots) {
  std::string state;
  for (const Slot& s : slots) {
    if (auto ok = write_file(served_path(dir, s.id), s.served.chain_pem + s.served.key_pem); !ok)
      return ok;
    if (!s.state.candidate.empty()) state += "candidate " + s.id + " " + s.state.candidate + "\n";
    for (const Sighting& seen : s.state.seen)
      state += "seen " + s.id + " " + seen.mx_name + " " + std::to_string(seen.first_seen) + " " +
               std::to_string(seen.ttl) + " " + seen.record + "\n";
  }
  return write_file(dir + "/state", state);
}

std::vector<dns::Query> tlsa_queries(const config::InboundConfig& in) {
  std::vector<dns::Query> out;
  for (const std::string& name : in.mx_names)
    out.push_back({"_" + std::to_string(in.tlsa_port) + "._tcp." + name, dns::RrType::TLSA});
  return out;
}

std::vector<Lookup> lookups(const config::InboundConfig& in,
                            const std::vector<dns::Answer>& answers) {
  std::vector<Lookup> out;
  for (std::size_t i = 0; i < in.mx_names.size() && i < answers.size(); ++i)
    out.push_back(lookup_from(in.mx_names[i], answers[i]));
  return out;
}

std::string describe(const Chain& chain) {
  if (chain.certs.empty()) return "(none)";
  const tls::CertSummary& leaf = chain.leaf();
  std::string names;
  for (const std::string& n : leaf.dns_names) names += (names.empty() ? "" : ",") + n;
  if (names.empty()) names = leaf.subject;
  return leaf.key + " " + names + " (sha256 " + chain.fingerprint.substr(0, 16) +
         "..., not after " + leaf.not_after + ")";
}

std::vector<std::string> report(const Slot& slot) {
  std::vector<std::string> out;
  const Decision& d = slot.last;
  for (const NameStatus& n : d.names) {
    if (!n.problem.empty())
      out.push_back("inbound TLSA " + n.owner + ": " + n.problem);
    else if (!n.served_published)
      out.push_back("inbound TLSA " + n.owner + ": no record matches the served certificate " +
                    describe(slot.served));
  }
  if (slot.candidate) {
    out.push_back("inbound rollover of " + slot.files.cert_file + " to " +
                  describe(*slot.candidate) + ": " + d.why);
    for (const std::string& r : d.to_publish) out.push_back("inbound rollover: publish " + r);
  }
  if (d.expiring) out.push_back("inbound certificate: " + d.expiry_problem);
  return out;
}

}  // namespace danemta::inbound
