// libFuzzer target: RFC 5322 header sections and address lists
// (mime/header.hpp) and the sendmail command's message completion
// (sendmail/message.hpp). Checks what the headers promise: the streaming
// completer's output does not depend on how the text is split, equals the
// text when it already has the fields, and otherwise has them in its
// header section; address lists give non-empty local parts; a completed
// message has no Bcc: field left.
//
// Input: a mode byte, a split byte, then the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mime/header.hpp"
#include "sendmail/message.hpp"

namespace {

using namespace danemta;

std::string complete(std::string_view text, std::size_t step) {
  mime::HeaderCompleter c({{"Date", "Date: D\r\n"}, {"Message-ID", "Message-ID: <M@h>\r\n"}});
  std::string out;
  if (step == 0) step = text.size() + 1;
  for (std::size_t at = 0; at < text.size(); at += step) c.feed(text.substr(at, step), out);
  c.finish(out);
  return out;
}

void check_completer(std::string_view text, std::size_t step) {
  const std::string whole = complete(text, 0);
  if (complete(text, step) != whole) __builtin_trap();
  const mime::HeaderSection in = mime::parse_header(text);
  if (mime::has_field(in, "Date") && mime::has_field(in, "Message-ID")) {
    if (whole != text) __builtin_trap();
    return;
  }
  const mime::HeaderSection out = mime::parse_header(whole);
  if (!mime::has_field(out, "Date") || !mime::has_field(out, "Message-ID")) __builtin_trap();
}

void check_addresses(std::string_view text) {
  auto list = mime::address_list(text);
  if (!list) {
    if (list.error().message.empty()) __builtin_trap();
    return;
  }
  for (const mime::Mailbox& m : *list)
    if (m.local_part.empty()) __builtin_trap();
}

void check_sendmail(std::string_view text) {
  const mime::HeaderSection header = mime::parse_header(text);
  (void)sendmail::header_recipients(header);
  sendmail::Completion add{"Received: by h;\r\n\tD\r\n", "a@h", "D", "<M@h>"};
  const std::string out = sendmail::complete_message(text, header, add);
  const mime::HeaderSection done = mime::parse_header(out);
  if (mime::has_field(done, "Bcc") || mime::has_field(done, "Resent-Bcc")) __builtin_trap();
  if (!mime::has_field(done, "From") || !mime::has_field(done, "Date")) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (data[0] % 3) {
    case 0:
      check_addresses(text);
      break;
    case 1:
      check_completer(text, data[1]);
      break;
    default:
      check_sendmail(text);
      break;
  }
  return 0;
}
