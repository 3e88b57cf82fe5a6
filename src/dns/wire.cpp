#include "dns/wire.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

namespace danemta::dns {

namespace wire {

namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxName = 255;

std::uint16_t get16(Bytes p, std::size_t at) {
  return static_cast<std::uint16_t>((p[at] << 8) | p[at + 1]);
}

std::uint32_t get32(Bytes p, std::size_t at) {
  return (std::uint32_t{p[at]} << 24) | (std::uint32_t{p[at + 1]} << 16) |
         (std::uint32_t{p[at + 2]} << 8) | std::uint32_t{p[at + 3]};
}

// RFC 1035 section 5.1 presentation of one label octet, lower-cased.
void append_label_octet(std::string& out, std::uint8_t c) {
  if (c >= 'A' && c <= 'Z') {
    out.push_back(static_cast<char>(c - 'A' + 'a'));
  } else if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
    out.push_back(static_cast<char>(c));
  } else {
    out.push_back('\\');
    out.push_back(static_cast<char>('0' + c / 100));
    out.push_back(static_cast<char>('0' + (c / 10) % 10));
    out.push_back(static_cast<char>('0' + c % 10));
  }
}

std::string rdata_size_error(std::size_t have, std::string_view need) {
  return "RDATA is " + std::to_string(have) + " bytes, need " + std::string(need);
}

std::size_t rdata_end(const Record& rr) {
  return rr.rdata_offset + rr.rdlength;
}

// Guards the RDATA parsers against a Record that did not come from this packet.
bool fits(Bytes packet, const Record& rr) {
  return rr.rdata_offset <= packet.size() && rr.rdlength <= packet.size() - rr.rdata_offset;
}

}  // namespace

Result<std::string> read_name(Bytes packet, std::size_t& offset, std::size_t limit) {
  limit = std::min(limit, packet.size());
  std::string out;
  std::size_t pos = offset;
  std::size_t end = limit;      // bytes of the current run must lie before this
  std::size_t run_start = pos;  // a pointer must point strictly before this
  bool jumped = false;
  std::size_t wire_length = 0;  // RFC 1035 2.3.4: length octets + labels + root
  for (;;) {
    if (pos >= end) {
      return fail("name at offset " + std::to_string(offset) + " runs past the end of its data");
    }
    const std::uint8_t len = packet[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= end) {
        return fail("compression pointer at offset " + std::to_string(pos) + " is truncated");
      }
      const std::size_t target = get16(packet, pos) & 0x3fffu;
      if (target >= packet.size()) {
        return fail("compression pointer at offset " + std::to_string(pos) + " points to " +
                    std::to_string(target) + ", outside the packet (" +
                    std::to_string(packet.size()) + " bytes)");
      }
      if (target >= run_start) {
        return fail("compression pointer at offset " + std::to_string(pos) + " points to " +
                    std::to_string(target) + ", not before the labels it continues (loop)");
      }
      if (!jumped) offset = pos + 2;
      jumped = true;
      pos = target;
      run_start = target;
      end = packet.size();
      continue;
    }
    if ((len & 0xc0) != 0) {
      return fail("label length byte " + std::to_string(len) + " at offset " + std::to_string(pos) +
                  ": labels are at most 63 octets");
    }
    wire_length += 1u + len;
    if (wire_length > kMaxName) {
      return fail("name at offset " + std::to_string(offset) + " is longer than 255 octets");
    }
    if (len == 0) {
      if (!jumped) offset = pos + 1;
      return out;
    }
    if (len > end - pos - 1) {
      return fail("label at offset " + std::to_string(pos) + " runs past the end of its data");
    }
    if (!out.empty()) out.push_back('.');
    for (std::size_t i = 0; i < len; ++i) append_label_octet(out, packet[pos + 1 + i]);
    pos += 1u + len;
  }
}

Result<Message> parse_message(Bytes packet) {
  if (packet.size() < kHeaderSize) {
    return fail("header is " + std::to_string(packet.size()) + " bytes, need 12");
  }
  Message m;
  m.header.id = get16(packet, 0);
  m.header.flags = get16(packet, 2);
  m.header.rcode = m.header.flags & 0x0f;
  m.header.qdcount = get16(packet, 4);
  m.header.ancount = get16(packet, 6);
  m.header.nscount = get16(packet, 8);
  m.header.arcount = get16(packet, 10);

  std::size_t pos = kHeaderSize;
  for (std::uint16_t i = 0; i < m.header.qdcount; ++i) {
    auto name = read_name(packet, pos, packet.size());
    if (!name) return fail("question " + std::to_string(i + 1) + ": " + name.error().message);
    if (packet.size() - pos < 4) return fail("question " + std::to_string(i + 1) + " is truncated");
    pos += 4;
  }

  // Each record takes at least 11 bytes; the count cannot make us allocate more.
  m.answers.reserve(std::min<std::size_t>(m.header.ancount, (packet.size() - pos) / 11));
  for (std::uint16_t i = 0; i < m.header.ancount; ++i) {
    const std::string which = "answer record " + std::to_string(i + 1);
    auto owner = read_name(packet, pos, packet.size());
    if (!owner) return fail(which + ": " + owner.error().message);
    if (packet.size() - pos < 10) return fail(which + " is truncated");
    Record rr;
    rr.owner = std::move(*owner);
    rr.type = get16(packet, pos);
    rr.rclass = get16(packet, pos + 2);
    rr.ttl = get32(packet, pos + 4);
    rr.rdlength = get16(packet, pos + 8);
    pos += 10;
    if (rr.rdlength > packet.size() - pos) {
      return fail(which + ": RDLENGTH " + std::to_string(rr.rdlength) + " at offset " +
                  std::to_string(pos - 2) + " runs past the end of the packet (" +
                  std::to_string(packet.size()) + " bytes)");
    }
    rr.rdata_offset = pos;
    pos += rr.rdlength;
    m.answers.push_back(std::move(rr));
  }
  return m;
}

std::optional<std::uint32_t> negative_ttl(Bytes packet) {
  constexpr std::uint16_t kSoa = 6;
  constexpr std::uint16_t kIn = 1;
  auto m = parse_message(packet);
  if (!m) return std::nullopt;
  // parse_message stopped after the answer section: find where it ends.
  std::size_t pos = kHeaderSize;
  for (std::uint16_t i = 0; i < m->header.qdcount; ++i) {
    if (!read_name(packet, pos, packet.size())) return std::nullopt;
    pos += 4;
  }
  for (std::uint16_t i = 0; i < m->header.ancount; ++i) {
    if (!read_name(packet, pos, packet.size())) return std::nullopt;
    pos += 10u + get16(packet, pos + 8);
  }
  std::optional<std::uint32_t> ttl;
  for (std::uint16_t i = 0; i < m->header.nscount; ++i) {
    if (!read_name(packet, pos, packet.size()) || packet.size() - pos < 10) return std::nullopt;
    const std::uint16_t type = get16(packet, pos);
    const std::uint16_t rclass = get16(packet, pos + 2);
    const std::uint32_t rr_ttl = get32(packet, pos + 4);
    const std::uint16_t rdlength = get16(packet, pos + 8);
    pos += 10;
    if (rdlength > packet.size() - pos) return std::nullopt;
    const std::size_t end = pos + rdlength;
    if (type == kSoa && rclass == kIn) {
      // RFC 1035 section 3.3.13: MNAME, RNAME, then SERIAL, REFRESH, RETRY,
      // EXPIRE and MINIMUM, 32 bits each.
      std::size_t at = pos;
      if (!read_name(packet, at, end) || !read_name(packet, at, end)) return std::nullopt;
      if (end - at != 20) return std::nullopt;
      const std::uint32_t minimum = get32(packet, at + 16);
      ttl = std::min(ttl.value_or(rr_ttl), std::min(rr_ttl, minimum));
    }
    pos = end;
  }
  return ttl;
}

Result<std::string> parse_a(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  if (rr.rdlength != 4) return fail(rdata_size_error(rr.rdlength, "4"));
  std::array<char, INET_ADDRSTRLEN> text{};
  if (inet_ntop(AF_INET, packet.data() + rr.rdata_offset, text.data(), text.size()) == nullptr) {
    return fail("cannot format IPv4 address");
  }
  return std::string(text.data());
}

Result<std::string> parse_aaaa(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  if (rr.rdlength != 16) return fail(rdata_size_error(rr.rdlength, "16"));
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (inet_ntop(AF_INET6, packet.data() + rr.rdata_offset, text.data(), text.size()) == nullptr) {
    return fail("cannot format IPv6 address");
  }
  return std::string(text.data());
}

Result<MxRecord> parse_mx(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  if (rr.rdlength < 3) return fail(rdata_size_error(rr.rdlength, "at least 3"));
  MxRecord mx;
  mx.preference = get16(packet, rr.rdata_offset);
  std::size_t pos = rr.rdata_offset + 2;
  auto exchange = read_name(packet, pos, rdata_end(rr));
  if (!exchange) return fail("exchange: " + exchange.error().message);
  if (pos != rdata_end(rr)) {
    return fail(std::to_string(rdata_end(rr) - pos) + " bytes after the exchange name");
  }
  mx.exchange = std::move(*exchange);
  return mx;
}

Result<std::string> parse_cname(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  if (rr.rdlength < 1) return fail(rdata_size_error(rr.rdlength, "at least 1"));
  std::size_t pos = rr.rdata_offset;
  auto target = read_name(packet, pos, rdata_end(rr));
  if (!target) return fail("target: " + target.error().message);
  if (pos != rdata_end(rr)) {
    return fail(std::to_string(rdata_end(rr) - pos) + " bytes after the target name");
  }
  return std::move(*target);
}

Result<TlsaRecord> parse_tlsa(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  // RFC 6698 section 2.1: usage, selector and matching type; the association
  // data may be empty (the record is then unusable, RFC 7672 section 3.1).
  if (rr.rdlength < 3) return fail(rdata_size_error(rr.rdlength, "at least 3"));
  const std::size_t at = rr.rdata_offset;
  TlsaRecord t;
  t.usage = packet[at];
  t.selector = packet[at + 1];
  t.mtype = packet[at + 2];
  t.data.assign(packet.begin() + static_cast<std::ptrdiff_t>(at + 3),
                packet.begin() + static_cast<std::ptrdiff_t>(rdata_end(rr)));
  return t;
}

Result<std::string> parse_txt(Bytes packet, const Record& rr) {
  if (!fits(packet, rr)) return fail("RDATA outside the packet");
  if (rr.rdlength < 1) return fail(rdata_size_error(rr.rdlength, "at least 1"));
  std::string out;
  std::size_t pos = rr.rdata_offset;
  const std::size_t end = rdata_end(rr);
  while (pos < end) {
    const std::size_t len = packet[pos];
    if (len > end - pos - 1) {
      return fail("character-string of " + std::to_string(len) + " octets at RDATA offset " +
                  std::to_string(pos - rr.rdata_offset) + " runs past the RDATA (" +
                  std::to_string(rr.rdlength) + " bytes)");
    }
    out.append(reinterpret_cast<const char*>(packet.data() + pos + 1), len);
    pos += 1 + len;
  }
  return out;
}

}  // namespace wire

namespace {

constexpr int kRcodeNoError = 0;
constexpr int kRcodeNxDomain = 3;
constexpr std::uint16_t kClassIn = 1;
constexpr std::size_t kMaxCnameLinks = 16;

std::string rcode_text(int rcode) {
  switch (rcode) {
    case 1:
      return "FORMERR";
    case 2:
      return "SERVFAIL";
    case 4:
      return "NOTIMP";
    case 5:
      return "REFUSED";
    default:
      return "RCODE " + std::to_string(rcode);
  }
}

std::string display_name(const std::string& name) {
  return name.empty() ? "." : name;
}

// RFC 4035 section 5 does not cover a well-signed but unparsable record: it is
// neither data nor a proven absence, so the answer has no verdict.
void mark_malformed(Answer& a, std::string reason) {
  a.malformed = reason;
  if (a.answered()) {
    a.security = Security::indeterminate;
    a.why = std::move(reason);
  }
  a.havedata = false;
  a.mx.clear();
  a.addresses.clear();
  a.tlsa.clear();
  a.txt.clear();
}

// Parses the qtype records at a.canonical_name into `a`; returns their minimum
// TTL, or nullopt when there are none. Stops at the first malformed record.
std::optional<std::uint32_t> collect_records(Answer& a, wire::Bytes packet,
                                             const wire::Message& m) {
  std::optional<std::uint32_t> ttl;
  const auto qtype = static_cast<std::uint16_t>(a.qtype);
  for (const wire::Record& rr : m.answers) {
    if (rr.type != qtype || rr.rclass != kClassIn || rr.owner != a.canonical_name) continue;
    std::string error;
    switch (a.qtype) {
      case RrType::A:
        if (auto r = wire::parse_a(packet, rr)) {
          a.addresses.push_back(std::move(*r));
        } else {
          error = r.error().message;
        }
        break;
      case RrType::AAAA:
        if (auto r = wire::parse_aaaa(packet, rr)) {
          a.addresses.push_back(std::move(*r));
        } else {
          error = r.error().message;
        }
        break;
      case RrType::MX:
        if (auto r = wire::parse_mx(packet, rr)) {
          a.mx.push_back(std::move(*r));
        } else {
          error = r.error().message;
        }
        break;
      case RrType::TLSA:
        if (auto r = wire::parse_tlsa(packet, rr)) {
          a.tlsa.push_back(std::move(*r));
        } else {
          error = r.error().message;
        }
        break;
      case RrType::TXT:
        if (auto r = wire::parse_txt(packet, rr)) {
          a.txt.push_back(std::move(*r));
        } else {
          error = r.error().message;
        }
        break;
      case RrType::DNSKEY:
        break;  // counted, not kept: only the probe asks for it
      case RrType::CNAME:
        if (auto r = wire::parse_cname(packet, rr)) {
          a.cname_chain.push_back(CnameLink{rr.owner, std::move(*r), rr.ttl});
        } else {
          error = r.error().message;
        }
        break;
    }
    if (!error.empty()) {
      mark_malformed(a, std::string(to_string(a.qtype)) + " record at " + display_name(rr.owner) +
                            ": " + error);
      return std::nullopt;
    }
    ttl = std::min(ttl.value_or(rr.ttl), rr.ttl);
  }
  return ttl;
}

}  // namespace

Answer indeterminate_answer(const Query& q, std::string why) {
  Answer a;
  a.qname = q.name;
  a.qtype = q.type;
  a.canonical_name = q.name;
  a.security = Security::indeterminate;
  a.why = std::move(why);
  return a;
}

Answer build_answer(const Query& q, const RawResult& raw) {
  if (raw.err != 0) {
    return indeterminate_answer(
        q, raw.err_text.empty() ? "resolver error " + std::to_string(raw.err) : raw.err_text);
  }

  Answer a;
  a.qname = q.name;
  a.qtype = q.type;
  a.canonical_name = q.name;
  a.rcode = raw.rcode;
  a.nxdomain = raw.nxdomain;
  a.havedata = raw.havedata;
  if (raw.secure) {
    a.security = Security::secure;
  } else if (raw.bogus) {
    a.security = Security::bogus;
    a.why = raw.why_bogus.empty() ? "DNSSEC validation failed" : raw.why_bogus;
  } else if (raw.rcode != kRcodeNoError && raw.rcode != kRcodeNxDomain) {
    a.security = Security::indeterminate;
    a.why = rcode_text(raw.rcode) + " from upstream";
    a.havedata = false;
    return a;
  } else {
    a.security = Security::insecure;
  }

  if (raw.packet.empty()) {
    if (raw.havedata) mark_malformed(a, "no answer packet although the resolver reports data");
    return a;
  }
  const wire::Bytes packet(raw.packet);
  auto message = wire::parse_message(packet);
  if (!message) {
    mark_malformed(a, "answer packet: " + message.error().message);
    return a;
  }

  // RFC 1034 section 3.6.2: follow the aliases from qname, in order.
  if (q.type != RrType::CNAME) {
    for (;;) {
      auto it = std::find_if(message->answers.begin(), message->answers.end(),
                             [&](const wire::Record& rr) {
                               return rr.type == static_cast<std::uint16_t>(RrType::CNAME) &&
                                      rr.rclass == kClassIn && rr.owner == a.canonical_name;
                             });
      if (it == message->answers.end()) break;
      auto target = wire::parse_cname(packet, *it);
      if (!target) {
        mark_malformed(
            a, "CNAME record at " + display_name(it->owner) + ": " + target.error().message);
        return a;
      }
      const bool seen = *target == a.qname ||
                        std::any_of(a.cname_chain.begin(), a.cname_chain.end(),
                                    [&](const CnameLink& l) { return l.target == *target; });
      if (seen || a.cname_chain.size() >= kMaxCnameLinks) {
        mark_malformed(a, "CNAME loop or chain longer than " + std::to_string(kMaxCnameLinks) +
                              " at " + display_name(it->owner));
        return a;
      }
      a.cname_chain.push_back(CnameLink{it->owner, *target, it->ttl});
      a.canonical_name = std::move(*target);
    }
  }

  const std::optional<std::uint32_t> ttl = collect_records(a, packet, *message);
  if (!a.malformed.empty()) return a;
  if (ttl) {
    a.ttl = *ttl;
  } else {
    // No record of qtype: NXDOMAIN or NODATA, which may be cached for the
    // SOA's negative TTL (RFC 2308 sections 3 and 5). Without an SOA nothing
    // says how long: 0.
    a.ttl = wire::negative_ttl(packet).value_or(0);
  }

  const bool found = ttl.has_value();
  if (a.havedata && !found && a.security != Security::bogus) {
    mark_malformed(a, "the resolver reports data but the answer has no " +
                          std::string(to_string(a.qtype)) + " record at " +
                          display_name(a.canonical_name));
    return a;
  }
  if (!a.havedata) {
    a.mx.clear();
    a.addresses.clear();
    a.tlsa.clear();
    a.txt.clear();
  }
  return a;
}

Query probe_query() {
  return Query{"", RrType::DNSKEY};
}

bool needs_probe(const std::vector<Answer>& answers) {
  return std::any_of(answers.begin(), answers.end(), [](const Answer& a) {
    return a.security == Security::bogus || a.security == Security::indeterminate;
  });
}

void apply_probe(std::vector<Answer>& answers, const Answer& probe) {
  if (probe.security == Security::secure) return;
  const std::string probe_why = "the root DNSKEY query is " +
                                std::string(to_string(probe.security)) +
                                (probe.why.empty() ? std::string() : " (" + probe.why + ")");
  for (Answer& a : answers) {
    if (a.security != Security::bogus && a.security != Security::indeterminate) continue;
    const std::string original = a.why.empty() ? std::string(to_string(a.security)) : a.why;
    a.security = Security::indeterminate;
    a.local_failure = true;
    a.havedata = false;
    a.mx.clear();
    a.addresses.clear();
    a.tlsa.clear();
    a.txt.clear();
    a.why = "local DNS resolver not answering: " + probe_why + "; " + original;
  }
}

}  // namespace danemta::dns
