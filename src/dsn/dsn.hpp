// Delivery status notifications (RFC 3464): the bounce a sender gets when
// recipients fail permanently or their queue lifetime ends, and the delay
// warning. Pure: no I/O. Each failure carries the code of DESIGN.md section 5
// and, in words, what the receiving domain's admin must fix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace danemta::dsn {

enum class Action { failed, delayed };

struct FailedRecipient {
  std::string address;
  Action action = Action::failed;
  std::string status;               // enhanced code: "5.7.323"
  std::string remote_mta;           // "mx1.example.org" or "" (dns;...)
  std::string diagnostic;           // the server's reply (smtp;...) or danemta's reason
  bool diagnostic_is_smtp = false;  // true: Diagnostic-Code: smtp; false: X-danemta;
  std::string outcome;              // dane::OutcomeInfo::name or "" (a server's reply)
  std::string summary;              // dane::OutcomeInfo::summary, "" for a server's reply
  std::string fix;                  // dane::OutcomeInfo::fix, "" for a server's reply
  std::int64_t last_attempt = 0;    // seconds since the epoch
};

struct BounceInput {
  std::string reporting_mta;    // this relay's host name
  std::string original_id;      // queue id of the original message
  std::string original_sender;  // envelope sender of the original (the bounce's recipient)
  std::int64_t arrival_date = 0;
  std::int64_t now = 0;
  std::vector<FailedRecipient> recipients;
  std::string original_headers;  // header section of the original message (CRLF lines)
  std::string boundary_seed;     // makes the MIME boundary unique (e.g. the queue id)
};

// The complete RFC 5322 message (CRLF line ends): multipart/report;
// report-type=delivery-status (RFC 6522) with a human-readable part that
// names each failed recipient, the code, what happened and what the
// receiving admin must fix; a message/delivery-status part (RFC 3464
// sections 2.2 and 2.3); and the original headers (text/rfc822-headers).
// Its envelope sender must be null ("<>"), so it never bounces back; a
// message whose own envelope sender is null gets no bounce (RFC 5321
// section 4.5.5), which is the caller's decision.
//
// Form: CRLF lines of at most 998 octets; header fields folded at spaces
// (RFC 5322 section 2.2.3), a word longer than 900 octets split. CR, LF and
// other controls in any input become spaces in header fields. The text part
// is UTF-8, sent as quoted-printable when it is not ASCII; the
// message/delivery-status part is 7-bit: non-ASCII as RFC 6533 "\x{HEX}",
// a non-ASCII address as "utf-8; " utf-8-addr-xtext (RFC 6533 section 3).
// Recipients with the same explanation share one in the text part. An
// invalid status becomes 5.0.0 (failed) or 4.0.0 (delayed); arrival_date or
// last_attempt 0 omits the date field; X-Original-Message-ID is taken from
// original_headers when it has one.
std::string make_bounce(const BounceInput& input);

// The header section of a message (up to the first empty line), CRLF ends,
// LF or CRLF input. Bare CRs and NULs become spaces; a line over 998 octets
// continues on lines that start with a space. Whole lines are kept up to
// 64 KiB in all.
std::string header_section(const std::string& message);

}  // namespace danemta::dsn
