// libFuzzer target: the 7-bit downgrade (mime::to_7bit) and its encoders.
// Checks what downgrade.hpp promises: text that is not 8-bit comes back
// unchanged; a converted message has no octet >= 0x80 and no line over 998
// octets; a failure carries the status code of its kind and a one-line
// reason; a single text or binary part decodes to its original octets.
//
// Input: a mode byte, then the text. Mode 0: the text is a whole message.
// Mode 1 and 2: the text is the body of a text/plain or an
// application/octet-stream message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mime/downgrade.hpp"

namespace {

using namespace danemta::mime;

void check_lines(std::string_view s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t lf = s.find('\n', pos);
    if (lf == std::string_view::npos) lf = s.size();
    const std::size_t end = lf > pos && s[lf - 1] == '\r' ? lf - 1 : lf;
    if (end - pos > 998) __builtin_trap();
    pos = lf + 1;
  }
}

// Returns the output on success, after the common checks.
std::string check(const std::string& message) {
  auto out = to_7bit(message);
  if (!out) {
    const DowngradeFailure& f = out.error();
    if (f.status != (f.kind == DowngradeError::utf8_header ? "5.6.7" : "5.6.3")) __builtin_trap();
    if (f.reason.empty() || f.reason.find_first_of("\r\n") != std::string::npos) {
      __builtin_trap();
    }
    return {};
  }
  // A 7-bit message is not the converter's to change, whatever its line
  // lengths: it goes out as it came (and a long line is the submitter's).
  if (!is_8bit(message)) {
    if (*out != message) __builtin_trap();
    return *out;
  }
  if (is_8bit(*out)) __builtin_trap();
  check_lines(*out);
  return *out;
}

void check_single_part(std::string_view content_type, std::string_view body, bool text) {
  const std::string message =
      "Content-Type: " + std::string(content_type) + "\r\n\r\n" + std::string(body);
  auto out = to_7bit(message);
  if (!out) __builtin_trap();  // a single part always converts
  if (is_8bit(*out)) __builtin_trap();
  if (!is_8bit(body)) return;  // unchanged, long lines included
  check_lines(*out);
  const std::size_t blank = out->find("\r\n\r\n");
  if (blank == std::string::npos) __builtin_trap();
  const std::string_view encoded = std::string_view(*out).substr(blank + 4);
  const auto decoded = text ? decode_quoted_printable(encoded) : decode_base64(encoded);
  if (!decoded || *decoded != body) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      check(std::string(text));
      break;
    case 1:
      check_single_part("text/plain; charset=utf-8", text, true);
      break;
    default:
      check_single_part("application/octet-stream", text, false);
      break;
  }
  if (decode_quoted_printable(encode_quoted_printable(text)) != text) __builtin_trap();
  if (decode_base64(encode_base64(text)) != text) __builtin_trap();
  return 0;
}
