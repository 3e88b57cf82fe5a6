// libFuzzer target: the SMTP reply parser and parse_ehlo on arbitrary bytes.
// Checks the parser's contract: replies respect the limits, and the result does
// not depend on how the input is split into reads.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "smtp/reply.hpp"

namespace {

using danemta::smtp::Reply;
using danemta::smtp::ReplyLimits;
using danemta::smtp::ReplyParser;

void check(const Reply& r, const ReplyLimits& limits) {
  if (r.code < 200 || r.code > 599) __builtin_trap();
  if (r.lines.empty() || r.lines.size() > limits.max_lines) __builtin_trap();
  std::size_t total = 0;
  for (const auto& line : r.lines) {
    if (line.size() > limits.max_line_bytes) __builtin_trap();
    total += line.size();
  }
  if (total > limits.max_reply_bytes) __builtin_trap();
  if (!r.enhanced.empty() && r.enhanced[0] != static_cast<char>('0' + r.code / 100)) {
    __builtin_trap();
  }
  (void)danemta::smtp::parse_ehlo(r);
  (void)r.to_string();
}

std::vector<Reply> run(ReplyParser& p, std::string_view input, std::size_t step,
                       const ReplyLimits& limits) {
  std::vector<Reply> out;
  while (!input.empty()) {
    const std::size_t n = step < input.size() ? step : input.size();
    p.feed(input.substr(0, n));
    input.remove_prefix(n);
    while (auto r = p.next()) {
      check(*r, limits);
      out.push_back(std::move(*r));
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks small limits (so the fuzzer reaches them) and a read size.
  const std::uint8_t knobs = data[0];
  ReplyLimits limits;
  if (knobs & 1) {
    limits.max_line_bytes = 16;
    limits.max_lines = 4;
    limits.max_reply_bytes = 40;
  }
  const std::size_t step = 1 + (knobs >> 1);
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  ReplyParser whole(limits);
  const auto a = run(whole, input, input.size() + 1, limits);
  ReplyParser pieces(limits);
  const auto b = run(pieces, input, step, limits);
  // Same replies and same verdict whatever the read boundaries.
  if (a.size() != b.size() || whole.error() != pieces.error()) __builtin_trap();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].code != b[i].code || a[i].lines != b[i].lines || a[i].enhanced != b[i].enhanced) {
      __builtin_trap();
    }
  }
  return 0;
}
