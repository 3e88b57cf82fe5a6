// RFC 6152 section 3 downgrade: an 8-bit message for a next hop that does not
// offer 8BITMIME becomes 7-bit MIME (RFC 2045, 2046), or the reason it cannot.
// Pure: text in, text out; no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace danemta::mime {

enum class DowngradeError {
  utf8_header,    // raw 8-bit octets in a header field (RFC 6532) need SMTPUTF8: 5.6.7
  unconvertible,  // the MIME structure does not allow a faithful 7-bit form: 5.6.3
};

struct DowngradeFailure {
  DowngradeError kind = DowngradeError::unconvertible;
  std::string status;  // RFC 3463 enhanced status code: "5.6.7" or "5.6.3"
  std::string reason;  // one line for the non-delivery report
};

// True when the text holds an octet >= 0x80 (RFC 6152's 8-bit data), i.e.
// sending it to a hop without 8BITMIME needs to_7bit first.
bool is_8bit(std::string_view text);

// The message (header section, blank line, body; CRLF line ends) converted to
// 7-bit MIME. Text that is not 8-bit is returned unchanged. Otherwise every
// leaf part that holds 8-bit octets or lines over 998 octets and whose
// Content-Transfer-Encoding is 7bit, 8bit, binary or absent is re-encoded:
// text/* as quoted-printable, anything else as base64, with its
// Content-Transfer-Encoding field replaced or added; message/rfc822 parts are
// converted recursively and multipart/* bodies part by part, every other
// octet (header fields, preambles, delimiter lines, epilogues, untouched
// parts) kept as it was. A message without Content-Type is text/plain; if it
// also lacks MIME-Version, "MIME-Version: 1.0" is added, and
// "Content-Type: text/plain; charset=unknown-8bit" (RFC 1428) when it has no
// Content-Type. On success the result has no octet >= 0x80 and no line over
// 998 octets, and decoding each converted part gives its original octets.
tl::expected<std::string, DowngradeFailure> to_7bit(std::string_view message);

// RFC 2045 section 6.7 quoted-printable: CRLF pairs stay hard line breaks,
// every other octet outside 33..126 (and "=", and "." opening a line) is
// =XX, lines end in a soft break "=" before 76 characters.
std::string encode_quoted_printable(std::string_view data);

// RFC 2045 section 6.8 base64 in lines of 76 characters joined by CRLF (no
// CRLF after the last line).
std::string encode_base64(std::string_view data);

// Inverses of the encoders (strict: nullopt on a malformed "=" escape or a
// character outside the base64 alphabet other than CR and LF).
std::optional<std::string> decode_quoted_printable(std::string_view text);
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace danemta::mime
