// libFuzzer target: parse_path (smtp/path.hpp) on arbitrary bytes. Checks its
// contract: what it accepts respects the limits of RFC 5321 4.5.3.1, is made
// of its parts, and round-trips: "<" + mailbox + ">" parses to the same mailbox.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/path.hpp"

namespace {

using danemta::smtp::kMaxDomain;
using danemta::smtp::kMaxLocalPart;
using danemta::smtp::kMaxPath;
using danemta::smtp::parse_path;
using danemta::smtp::PathKind;

void check(std::string_view input, PathKind kind) {
  const auto p = parse_path(input, kind);
  if (!p) {
    if (p.error().detail.empty()) __builtin_trap();
    return;
  }
  // `rest` is what follows the path in the input.
  if (p->rest.size() >= input.size()) __builtin_trap();
  if (input.substr(input.size() - p->rest.size()) != p->rest) __builtin_trap();
  if (!p->rest.empty() && p->rest.front() != ' ') __builtin_trap();
  if (input.size() - p->rest.size() > kMaxPath) __builtin_trap();
  if (p->null) {
    if (kind != PathKind::reverse || !p->mailbox.empty()) __builtin_trap();
    return;
  }
  if (p->postmaster) {
    if (kind != PathKind::forward || p->mailbox.size() != 10) __builtin_trap();
    return;
  }
  if (p->local_part.empty() || p->local_part.size() > kMaxLocalPart) __builtin_trap();
  if (p->domain.empty() || p->domain.size() > kMaxDomain) __builtin_trap();
  if (p->mailbox != p->local_part + "@" + p->domain) __builtin_trap();
  if (p->domain_lower.size() != p->domain.size()) __builtin_trap();
  for (const char c : p->mailbox) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) __builtin_trap();
  }
  const std::string again = "<" + p->mailbox + ">";
  const auto q = parse_path(again, PathKind::forward);
  if (!q || q->mailbox != p->mailbox || q->local_part != p->local_part || q->domain != p->domain ||
      q->address_literal != p->address_literal || !q->rest.empty()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the path kind and whether the brackets are added.
  const std::uint8_t knobs = data[0];
  const PathKind kind = (knobs & 1) ? PathKind::reverse : PathKind::forward;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (knobs & 2) input = "<" + input + ">";
  check(input, kind);
  return 0;
}
