#include "smtp/reply.hpp"

#include <utility>

namespace danemta::smtp {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 3463 section 2: class "." subject "." detail, class 2/4/5, subject and
// detail 1-3 digits, followed by a space or the end of the text.
std::string enhanced_code(std::string_view text, int code) {
  std::size_t i = 0;
  const auto digits = [&](std::size_t max) {
    std::size_t n = 0;
    while (i < text.size() && is_digit(text[i]) && n < max + 1) ++i, ++n;
    return n >= 1 && n <= max;
  };
  if (!digits(1)) return {};
  if (text[0] != static_cast<char>('0' + code / 100)) return {};
  if (i >= text.size() || text[i] != '.') return {};
  ++i;
  if (!digits(3)) return {};
  if (i >= text.size() || text[i] != '.') return {};
  ++i;
  if (!digits(3)) return {};
  if (i < text.size() && text[i] != ' ') return {};
  return std::string(text.substr(0, i));
}

}  // namespace

std::string Reply::to_string() const {
  std::string out;
  const std::string c = std::to_string(code);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += c;
    out += (i + 1 == lines.size()) ? ' ' : '-';
    out += lines[i];
  }
  if (lines.empty()) out = c;
  return out;
}

std::string_view to_string(ReplyError e) {
  switch (e) {
    case ReplyError::line_too_long:
      return "reply line too long";
    case ReplyError::too_many_lines:
      return "too many lines in one reply";
    case ReplyError::reply_too_large:
      return "reply too large";
    case ReplyError::bad_code:
      return "reply line does not start with a 3-digit code";
    case ReplyError::code_out_of_range:
      return "reply code outside 200-599";
    case ReplyError::bad_separator:
      return "reply code not followed by '-', ' ' or the end of the line";
    case ReplyError::code_mismatch:
      return "continuation line with a different reply code";
  }
  return "unknown reply error";
}

void ReplyParser::reset() {
  line_.clear();
  line_.shrink_to_fit();
  current_ = Reply{};
  current_bytes_ = 0;
  replies_.clear();
  error_.reset();
}

void ReplyParser::set_error(ReplyError e) {
  error_ = e;
  // Release what the broken reply held: the connection is going away.
  line_.clear();
  line_.shrink_to_fit();
  current_ = Reply{};
  current_bytes_ = 0;
}

void ReplyParser::feed(std::string_view bytes) {
  while (!error_ && !bytes.empty()) {
    const std::size_t lf = bytes.find('\n');
    const std::string_view chunk = bytes.substr(0, lf);
    // One more byte than the limit may be a CR that the LF will strip.
    if (line_.size() + chunk.size() > limits_.max_line_bytes + 1) {
      set_error(ReplyError::line_too_long);
      return;
    }
    if (lf == std::string_view::npos) {
      line_.append(chunk);
      return;
    }
    bytes.remove_prefix(lf + 1);
    if (line_.empty()) {
      take_line(chunk);
    } else {
      line_.append(chunk);
      std::string line = std::move(line_);
      line_.clear();
      take_line(line);
    }
  }
}

void ReplyParser::take_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > limits_.max_line_bytes) return set_error(ReplyError::line_too_long);
  if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
    return set_error(ReplyError::bad_code);
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 200 || code > 599) return set_error(ReplyError::code_out_of_range);
  bool last = true;
  if (line.size() > 3) {
    if (line[3] == '-') {
      last = false;
    } else if (line[3] != ' ') {
      return set_error(ReplyError::bad_separator);
    }
  }
  // RFC 5321 4.2.1: every line of a multi-line reply carries the same code.
  if (!current_.lines.empty() && current_.code != code) {
    return set_error(ReplyError::code_mismatch);
  }
  if (current_.lines.size() + 1 > limits_.max_lines) {
    return set_error(ReplyError::too_many_lines);
  }
  const std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  current_bytes_ += text.size();
  if (current_bytes_ > limits_.max_reply_bytes) return set_error(ReplyError::reply_too_large);
  if (current_.lines.empty()) {
    current_.code = code;
    current_.enhanced = enhanced_code(text, code);
  }
  current_.lines.emplace_back(text);
  if (last) {
    replies_.push_back(std::move(current_));
    current_ = Reply{};
    current_bytes_ = 0;
  }
}

std::optional<Reply> ReplyParser::next() {
  if (replies_.empty()) return std::nullopt;
  Reply r = std::move(replies_.front());
  replies_.pop_front();
  return r;
}

Capabilities parse_ehlo(const Reply& reply) {
  Capabilities caps;
  // lines[0] is the server's domain and greeting text, not an extension.
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    const std::size_t sp = line.find(' ');
    const std::string_view keyword = line.substr(0, sp);
    std::string_view params = sp == std::string_view::npos ? std::string_view{} : line.substr(sp);
    while (!params.empty() && params.front() == ' ') params.remove_prefix(1);
    if (iequals(keyword, "STARTTLS")) {
      caps.starttls = true;
    } else if (iequals(keyword, "PIPELINING")) {
      caps.pipelining = true;
    } else if (iequals(keyword, "8BITMIME")) {
      caps.eightbitmime = true;
    } else if (iequals(keyword, "SMTPUTF8")) {
      caps.smtputf8 = true;
    } else if (iequals(keyword, "CHUNKING")) {
      caps.chunking = true;
    } else if (iequals(keyword, "ENHANCEDSTATUSCODES")) {
      caps.enhancedstatuscodes = true;
    } else if (iequals(keyword, "DSN")) {
      caps.dsn = true;
    } else if (iequals(keyword, "SIZE")) {
      caps.size = true;
      std::uint64_t value = 0;
      bool ok = !params.empty();
      for (const char c : params) {
        if (c == ' ') break;
        if (!is_digit(c) || value > (UINT64_MAX - 9) / 10) {
          ok = false;
          break;
        }
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
      }
      caps.size_limit = ok ? value : 0;
    }
  }
  return caps;
}

}  // namespace danemta::smtp
