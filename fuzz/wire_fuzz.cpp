// libFuzzer target: the DNS wire parser and build_answer on arbitrary packets.
#include <cstddef>
#include <cstdint>
#include <span>

#include "dns/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace danemta::dns;
  const std::span<const std::uint8_t> packet(data, size);
  if (auto m = wire::parse_message(packet)) {
    for (const wire::Record& rr : m->answers) {
      (void)wire::parse_a(packet, rr);
      (void)wire::parse_aaaa(packet, rr);
      (void)wire::parse_mx(packet, rr);
      (void)wire::parse_cname(packet, rr);
      (void)wire::parse_tlsa(packet, rr);
      (void)wire::parse_txt(packet, rr);
    }
  }
  // The first byte picks the verdict flags, the question is fixed: owners in
  // the input that match it exercise the CNAME and record paths.
  RawResult raw;
  const std::uint8_t flags = size > 0 ? data[0] : 0;
  raw.secure = (flags & 1) != 0;
  raw.bogus = (flags & 2) != 0;
  raw.havedata = (flags & 4) != 0;
  raw.nxdomain = (flags & 8) != 0;
  raw.rcode = (flags >> 4) & 0x0f;
  raw.packet.assign(data, data + size);
  static constexpr RrType kTypes[] = {RrType::A,   RrType::AAAA, RrType::MX,
                                      RrType::TXT, RrType::TLSA, RrType::CNAME};
  const RrType qtype = kTypes[(size > 1 ? data[1] : 0) % 6];
  for (const char* qname : {"example.org", "_25._tcp.mx.example.org", "a"}) {
    Answer a = build_answer(Query{qname, qtype}, raw);
    if (a.security == Security::secure && !a.malformed.empty()) __builtin_trap();
  }
  return 0;
}
