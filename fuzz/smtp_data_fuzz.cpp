// libFuzzer target: the DATA text encoder and decoder (smtp/data.hpp).
// Mode 1 (first byte odd): the rest is a message text; encode_data() and the
// client's chunked DataEncoder agree, and the encoded stream fed to DataDecoder
// in random-sized pieces ends exactly at its last octet and decodes to the
// text with every line ending as CRLF (and a final CRLF). Mode 0: the rest is
// raw bytes for DataDecoder; it never exceeds its maximum and its result does
// not depend on how the input is split.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/data.hpp"

namespace {

using danemta::smtp::DataDecoder;
using danemta::smtp::DataEncoder;
using danemta::smtp::encode_data;

// Piece sizes for feed(): 1..64, from a seed.
struct Pieces {
  std::uint32_t state;
  std::size_t next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return 1 + state % 64;
  }
};

// What the decoder must return for an encoded `text`: every CRLF, bare CR
// and bare LF as CRLF, a CRLF added after a last line without one.
std::string expected_text(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += text[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

struct Decoded {
  std::size_t consumed = 0;
  bool done = false;
  bool overflow = false;
  std::string text;
};

Decoded decode(std::string_view wire, std::size_t max, Pieces* pieces) {
  DataDecoder decoder(max);
  Decoded d;
  while (d.consumed < wire.size()) {
    const std::size_t n = pieces ? pieces->next() : wire.size();
    const std::string_view piece = wire.substr(d.consumed, n);
    const std::size_t used = decoder.feed(piece);
    if (used > piece.size()) __builtin_trap();
    d.consumed += used;
    if (decoder.done()) break;
    if (used != piece.size()) __builtin_trap();  // all of it unless done
  }
  d.done = decoder.done();
  d.overflow = decoder.overflow();
  d.text = decoder.take();
  if (d.text.size() > max) __builtin_trap();
  if (d.overflow && !d.text.empty()) __builtin_trap();
  return d;
}

void round_trip(std::string_view text, std::uint32_t seed) {
  const std::string wire = encode_data(text);
  Pieces sizes{seed | 1};
  std::string chunked;
  DataEncoder encoder(text);
  while (!encoder.done()) encoder.fill(chunked, chunked.size() + sizes.next());
  if (chunked != wire) __builtin_trap();

  Pieces pieces{seed | 1};
  const Decoded d = decode(wire, wire.size(), &pieces);
  if (!d.done || d.consumed != wire.size() || d.overflow) __builtin_trap();
  if (d.text != expected_text(text)) __builtin_trap();
}

void raw(std::string_view bytes, std::size_t max, std::uint32_t seed) {
  Pieces pieces{seed | 1};
  const Decoded a = decode(bytes, max, &pieces);
  const Decoded b = decode(bytes, max, nullptr);
  if (a.consumed != b.consumed || a.done != b.done || a.overflow != b.overflow ||
      a.text != b.text) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::uint32_t seed = data[1];
  const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  if (mode & 1) {
    round_trip(rest, seed);
  } else {
    // Small maxima so that overflow is reached, or none in practice.
    const std::size_t max = (mode & 2) ? (mode >> 2) : rest.size() + 16;
    raw(rest, max, seed);
  }
  return 0;
}
