// What danemta's sendmail does to a message before it submits it to the
// relay: read it as sendmail reads standard input, find the recipients in
// its header for -t, qualify bare addresses, and complete its header
// section (a trace field, From:, Date:, Message-ID:; Bcc: removed).
// Pure: no I/O.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "mime/header.hpp"

namespace danemta::sendmail {

// Reads the message from `in` with CRLF line ends (LF and CRLF both end a
// line in the input). With `dot_ends`, a line holding a single "." ends the
// message (it is not part of it); without, such a line is text (-i).
// Nothing else is changed: no dot-unstuffing, as the input is not SMTP.
// False when the stream failed for another reason than its end.
bool read_message(std::istream& in, bool dot_ends, std::string& out);

// The recipients named in the header section for -t: the Resent-To,
// Resent-Cc and Resent-Bcc fields when the message has any of them (RFC
// 5322 3.6.6: a resent message goes to the resent recipients), else To, Cc
// and Bcc. Errors name the field that cannot be read.
Result<std::vector<mime::Mailbox>> header_recipients(const mime::HeaderSection& header);

// `address` with "@domain" added when it has no "@" outside quotes.
std::string qualify(std::string_view address, std::string_view domain);

struct Completion {
  std::string trace;       // a whole field put first ("Received: ...\r\n"); "" for none
  std::string from;        // the From: field body to add when there is none
  std::string date;        // the Date: field body to add when there is none
  std::string message_id;  // the Message-ID: field body to add when there is none
};

// The message with every Bcc: and Resent-Bcc: field removed (RFC 5322
// 3.6.3: blind recipients must not see each other), `trace` in front, and
// From:, Date: and Message-ID: added at the end of the header section when
// missing (mime::HeaderCompleter's rules).
std::string complete_message(std::string_view message, const mime::HeaderSection& header,
                             const Completion& add);

}  // namespace danemta::sendmail
