#include "sendmail/message.hpp"

#include "base/text.hpp"

namespace danemta::sendmail {

namespace {

bool is_bcc(std::string_view name) {
  return iequals(name, "Bcc") || iequals(name, "Resent-Bcc");
}

}  // namespace

bool read_message(std::istream& in, bool dot_ends, std::string& out) {
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (dot_ends && line == ".") return true;
    out += line;
    out += "\r\n";
  }
  return !in.bad();
}

Result<std::vector<mime::Mailbox>> header_recipients(const mime::HeaderSection& header) {
  const bool resent = has_field(header, "Resent-To") || has_field(header, "Resent-Cc") ||
                      has_field(header, "Resent-Bcc");
  const std::string_view names[] = {"To", "Cc", "Bcc"};
  std::vector<mime::Mailbox> out;
  for (const mime::HeaderField& f : header.fields) {
    std::string_view name = f.name;
    if (resent) {
      if (name.size() <= 7 || !iequals(name.substr(0, 7), "Resent-")) continue;
      name.remove_prefix(7);
    }
    bool wanted = false;
    for (std::string_view n : names) wanted = wanted || iequals(name, n);
    if (!wanted) continue;
    auto list = mime::address_list(f.value);
    if (!list)
      return fail(std::string(f.name) + ": header: " + list.error().message, Severity::permanent);
    out.insert(out.end(), list->begin(), list->end());
  }
  return out;
}

std::string qualify(std::string_view address, std::string_view domain) {
  bool quoted = false;
  for (std::size_t i = 0; i < address.size(); ++i) {
    const char c = address[i];
    if (c == '\\' && quoted) {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '@' && !quoted) {
      return std::string(address);
    }
  }
  return std::string(address) + "@" + std::string(domain);
}

std::string complete_message(std::string_view message, const mime::HeaderSection& header,
                             const Completion& add) {
  std::string kept;
  kept.reserve(message.size());
  std::size_t pos = 0;
  for (const mime::HeaderField& f : header.fields) {
    if (!is_bcc(f.name)) continue;
    kept.append(message.substr(pos, f.offset - pos));
    pos = f.offset + f.raw.size();
  }
  kept.append(message.substr(pos));

  mime::HeaderCompleter completer({{"From", "From: " + add.from + "\r\n"},
                                   {"Date", "Date: " + add.date + "\r\n"},
                                   {"Message-ID", "Message-ID: " + add.message_id + "\r\n"}});
  // The trace field goes in front afterwards: the message's own first line
  // decides where its header section ends (a body starting with a space is
  // no continuation of the trace field).
  std::string out = add.trace;
  out.reserve(add.trace.size() + kept.size() + 256);
  completer.feed(kept, out);
  completer.finish(out);
  return out;
}

}  // namespace danemta::sendmail
