// Reading received TLS reports (RFC 8460 sections 4.3, 5.1 and 5.3); the
// contract is in received.hpp.
#define ZLIB_CONST
#include "tlsrpt/received.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "mime/header.hpp"

namespace danemta::tlsrpt {

namespace {

using nlohmann::json;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string size_text(std::size_t bytes) {
  if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// Notes once each, in the order first seen.
void note(std::vector<std::string>& notes, std::string text) {
  if (std::find(notes.begin(), notes.end(), text) == notes.end()) notes.push_back(std::move(text));
}

// ---- gzip ---------------------------------------------------------------------

class Inflater {
 public:
  Inflater() = default;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater() {
    if (initialised_) inflateEnd(&stream_);
  }
  // windowBits 15 + 32: zlib detects a gzip or a zlib header (zlib.h,
  // inflateInit2).
  bool init() {
    initialised_ = inflateInit2(&stream_, 15 + 32) == Z_OK;
    return initialised_;
  }
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
  bool initialised_ = false;
};

// ---- JSON ---------------------------------------------------------------------

// Before nlohmann builds a tree: nesting depth and the number of values,
// counted over the text outside strings (a value is one per comma, plus one
// per non-empty container), so the tree's size is bounded by the limits, not
// by what compresses well.
Result<void> check_json_shape(std::string_view text, const ReadLimits& limits) {
  std::size_t depth = 0;
  std::size_t values = 1;
  bool in_string = false;
  bool escaped = false;
  // nlohmann's parser takes a NUL byte for the end of the input and would
  // ignore what follows; JSON (RFC 8259) has no raw NUL anywhere.
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos)
    return fail("not valid JSON: a NUL byte at offset " + std::to_string(nul), Severity::permanent);
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        if (++depth > limits.max_depth)
          return fail("JSON nested deeper than " + std::to_string(limits.max_depth) + " levels",
                      Severity::permanent);
        ++values;
        break;
      case '}':
      case ']':
        if (depth > 0) --depth;
        break;
      case ',':
        ++values;
        break;
      default:
        break;
    }
    if (values > limits.max_values)
      return fail("JSON holds more than " + std::to_string(limits.max_values) + " values",
                  Severity::permanent);
  }
  return {};
}

// What one report's fields are read into, with the notes on the way.
struct Reader {
  std::vector<std::string>& notes;

  static std::string at(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  // An optional string member: "" when absent or null.
  Result<std::string> text(const json& obj, std::string_view key, const std::string& path) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::string();
    if (!it->is_string())
      return fail(at(path, key) + ": expected a string, found " + it->type_name(),
                  Severity::permanent);
    return it->get<std::string>();
  }

  // A string the RFC requires; a sender that leaves it out is noted.
  Result<std::string> wanted_text(const json& obj, std::string_view key, const std::string& path) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) note(notes, "no " + std::string(key));
    return text(obj, key, path);
  }

  // A string or an array of strings (mx-host, policy-string).
  Result<std::vector<std::string>> strings(const json& obj, std::string_view key,
                                           const std::string& path) {
    std::vector<std::string> out;
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return out;
    if (it->is_string()) {
      note(notes, std::string(key) + " given as a string, not an array");
      out.push_back(it->get<std::string>());
      return out;
    }
    if (!it->is_array())
      return fail(at(path, key) + ": expected an array of strings, found " + it->type_name(),
                  Severity::permanent);
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (!v.is_string())
        return fail(at(path, key) + "[" + std::to_string(i) + "]: expected a string, found " +
                        v.type_name(),
                    Severity::permanent);
      out.push_back(v.get<std::string>());
    }
    return out;
  }

  // A session count (section 4.3: a number): a non-negative integer, also
  // when written as a string of digits or as a number with ".0".
  Result<std::int64_t> count(const json& obj, std::string_view key, const std::string& path) {
    const auto it = obj.find(key);
    const std::string where = at(path, key);
    if (it == obj.end() || it->is_null())
      return fail(where + ": missing (a session count is required)", Severity::permanent);
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    if (it->is_number_unsigned()) {
      const auto v = it->get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(kMax))
        return fail(where + ": " + std::to_string(v) + " is too large", Severity::permanent);
      return static_cast<std::int64_t>(v);
    }
    if (it->is_number_integer()) {
      const auto v = it->get<std::int64_t>();
      if (v < 0) return fail(where + ": negative (" + std::to_string(v) + ")", Severity::permanent);
      return v;
    }
    if (it->is_number_float()) {
      const double v = it->get<double>();
      if (!(v >= 0) || v != std::floor(v) || v >= 9.2e18)
        return fail(where + ": " + it->dump() + " is not a session count", Severity::permanent);
      note(notes, "counts written with a fraction (\".0\")");
      return static_cast<std::int64_t>(v);
    }
    if (it->is_string()) {
      const std::string s(trim(it->get_ref<const std::string&>()));
      std::int64_t v = 0;
      bool ok = !s.empty() && s.size() <= 18;
      for (const char c : s) {
        if (c < '0' || c > '9') {
          ok = false;
          break;
        }
        v = v * 10 + (c - '0');
      }
      if (!ok)
        return fail(where + ": \"" + it->get<std::string>() + "\" is not a session count",
                    Severity::permanent);
      note(notes, "counts written as strings");
      return v;
    }
    return fail(where + ": expected a number, found " + std::string(it->type_name()),
                Severity::permanent);
  }

  // An object member that must be there.
  Result<const json*> object(const json& obj, std::string_view key, const std::string& path) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
      return fail(at(path, key) + ": missing", Severity::permanent);
    if (!it->is_object())
      return fail(at(path, key) + ": expected an object, found " + it->type_name(),
                  Severity::permanent);
    return &*it;
  }
};

Result<ReceivedPolicy> read_policy(Reader& r, const json& entry, const std::string& path) {
  if (!entry.is_object())
    return fail(path + ": expected an object, found " + std::string(entry.type_name()),
                Severity::permanent);
  ReceivedPolicy p;
  auto policy = r.object(entry, "policy", path);
  if (!policy) return tl::unexpected(policy.error());
  const std::string ppath = path + ".policy";
  auto type = r.wanted_text(**policy, "policy-type", ppath);
  if (!type) return tl::unexpected(type.error());
  p.policy_type = to_lower(*type);
  auto strings = r.strings(**policy, "policy-string", ppath);
  if (!strings) return tl::unexpected(strings.error());
  p.policy_strings = std::move(*strings);
  auto domain = r.wanted_text(**policy, "policy-domain", ppath);
  if (!domain) return tl::unexpected(domain.error());
  p.policy_domain = normalize_domain(*domain);
  auto mx = r.strings(**policy, "mx-host", ppath);
  if (!mx) return tl::unexpected(mx.error());
  for (const std::string& h : *mx) p.mx_hosts.push_back(normalize_domain(h));

  auto summary = r.object(entry, "summary", path);
  if (!summary) return tl::unexpected(summary.error());
  const std::string spath = path + ".summary";
  auto ok = r.count(**summary, "total-successful-session-count", spath);
  if (!ok) return tl::unexpected(ok.error());
  auto failed = r.count(**summary, "total-failure-session-count", spath);
  if (!failed) return tl::unexpected(failed.error());
  p.successful = *ok;
  p.failed = *failed;

  const auto details = entry.find("failure-details");
  if (details == entry.end() || details->is_null()) return p;
  if (!details->is_array())
    return fail(
        path + ".failure-details: expected an array, found " + std::string(details->type_name()),
        Severity::permanent);
  for (std::size_t i = 0; i < details->size(); ++i) {
    const json& d = (*details)[i];
    const std::string dpath = path + ".failure-details[" + std::to_string(i) + "]";
    if (!d.is_object())
      return fail(dpath + ": expected an object, found " + std::string(d.type_name()),
                  Severity::permanent);
    ReceivedFailure f;
    for (const auto& [key, field] :
         {std::pair<std::string_view, std::string*>{"result-type", &f.result_type},
          {"sending-mta-ip", &f.sending_mta_ip},
          {"receiving-mx-hostname", &f.receiving_mx_hostname},
          {"receiving-ip", &f.receiving_ip},
          {"failure-reason-code", &f.failure_reason_code}}) {
      auto v = key == "result-type" ? r.wanted_text(d, key, dpath) : r.text(d, key, dpath);
      if (!v) return tl::unexpected(v.error());
      *field = std::move(*v);
    }
    f.result_type = to_lower(f.result_type);
    f.receiving_mx_hostname = normalize_domain(f.receiving_mx_hostname);
    auto n = r.count(d, "failed-session-count", dpath);
    if (!n) return tl::unexpected(n.error());
    f.failed_session_count = *n;
    p.failures.push_back(std::move(f));
  }
  return p;
}

// ---- MIME (RFC 2045, 2046) ------------------------------------------------------

struct ContentType {
  std::string type;  // "multipart/report", lower case; "" when there is none
  std::map<std::string, std::string> params;  // names lower case
};

// Skips white space and (nested) comments (RFC 5322 CFWS).
void skip_cfws(std::string_view s, std::size_t& i) {
  int comment = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (comment > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++comment;
      } else if (c == ')') {
        --comment;
      }
    } else if (c == '(') {
      comment = 1;
    } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      return;
    }
    ++i;
  }
}

// RFC 2045 section 5.1: type "/" subtype *(";" attribute "=" value), the
// value a token or a quoted-string. Also reads Content-Disposition
// ("attachment; filename=..."), whose first word has no "/".
ContentType parse_content_type(std::string_view s) {
  static constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?= \t\r\n";
  const auto token = [&](std::size_t& i) {
    const std::size_t start = i;
    while (i < s.size() && kTspecials.find(s[i]) == std::string_view::npos &&
           static_cast<unsigned char>(s[i]) > 0x20)
      ++i;
    return std::string(s.substr(start, i - start));
  };
  ContentType ct;
  std::size_t i = 0;
  skip_cfws(s, i);
  ct.type = to_lower(token(i));
  skip_cfws(s, i);
  if (i < s.size() && s[i] == '/') {
    ++i;
    skip_cfws(s, i);
    ct.type += "/" + to_lower(token(i));
  }
  while (i < s.size()) {
    skip_cfws(s, i);
    if (i >= s.size() || s[i] != ';') {
      // Something the grammar does not allow: skip to the next parameter.
      const std::size_t next = s.find(';', i);
      if (next == std::string_view::npos) break;
      i = next;
    }
    ++i;
    skip_cfws(s, i);
    std::string name = to_lower(token(i));
    skip_cfws(s, i);
    if (i >= s.size() || s[i] != '=') continue;
    ++i;
    skip_cfws(s, i);
    std::string value;
    if (i < s.size() && s[i] == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        if (s[i] != '\r' && s[i] != '\n') value += s[i];
      }
      if (i < s.size()) ++i;
    } else {
      // A token; read up to ";" or white space, so that a value senders
      // leave unquoted although it holds tspecials ("boundary==_x") is whole.
      const std::size_t start = i;
      while (i < s.size() && s[i] != ';' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
             s[i] != '\n' && s[i] != '(')
        ++i;
      value = std::string(s.substr(start, i - start));
    }
    if (!name.empty() && !ct.params.contains(name)) ct.params.emplace(std::move(name), value);
  }
  return ct;
}

const mime::HeaderField* find_field(const mime::HeaderSection& h, std::string_view name) {
  for (const mime::HeaderField& f : h.fields)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// RFC 2045 section 6.8: characters outside the alphabet (line ends) are
// ignored; "=" ends the data.
std::string base64_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  std::uint32_t bits = 0;
  int nbits = 0;
  for (const char c : in) {
    if (c == '=') break;
    const int v = base64_value(c);
    if (v < 0) continue;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char l = lower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

// RFC 2045 section 6.7: "=XX" octets and "=" soft line breaks.
std::string quoted_printable_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out.push_back(in[i]);
      continue;
    }
    std::size_t j = i + 1;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
    if (j < in.size() && (in[j] == '\n' || in[j] == '\r')) {
      i = (in[j] == '\r' && j + 1 < in.size() && in[j + 1] == '\n') ? j + 1 : j;
      continue;
    }
    if (i + 2 < in.size() && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
      i += 2;
      continue;
    }
    out.push_back('=');
  }
  return out;
}

// The body parts of a multipart body (RFC 2046 section 5.1.1): between
// delimiter lines "--boundary" (transport padding after it allowed), the
// line end before a delimiter belonging to it; up to the close delimiter
// "--boundary--" or the end of the body.
Result<std::vector<std::string_view>> split_multipart(std::string_view body,
                                                      std::string_view boundary,
                                                      std::size_t max_parts) {
  const std::string dash = "--" + std::string(boundary);
  std::vector<std::string_view> parts;
  std::optional<std::size_t> part_start;
  std::size_t line = 0;
  while (line < body.size()) {
    std::size_t eol = body.find('\n', line);
    const std::size_t next = eol == std::string_view::npos ? body.size() : eol + 1;
    std::string_view text = body.substr(line, next - line);
    if (text.starts_with(dash)) {
      std::string_view rest = text.substr(dash.size());
      const bool close = rest.starts_with("--");
      if (close) rest.remove_prefix(2);
      const bool delimiter = std::all_of(rest.begin(), rest.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
      });
      if (delimiter) {
        if (part_start) {
          // The line end before the delimiter is part of it.
          std::size_t end = line;
          if (end > *part_start && body[end - 1] == '\n') --end;
          if (end > *part_start && body[end - 1] == '\r') --end;
          parts.push_back(body.substr(*part_start, end - std::min(end, *part_start)));
          if (parts.size() > max_parts)
            return fail("more than " + std::to_string(max_parts) + " MIME parts",
                        Severity::permanent);
        }
        if (close) return parts;
        part_start = next;
      }
    }
    line = next;
  }
  if (part_start && *part_start < body.size()) parts.push_back(body.substr(*part_start));
  if (parts.empty())
    return fail(
        "multipart body without a part (boundary \"" + std::string(boundary) + "\" not found)",
        Severity::permanent);
  return parts;
}

struct Attachment {
  std::string data;          // decoded
  bool tlsrpt_type = false;  // declared application/tlsrpt+gzip or +json
  std::string declared;      // the content type as declared
};

// Finds the report attachment: the first application/tlsrpt+gzip or
// application/tlsrpt+json part, else the first part named *.json.gz or
// *.json (senders that label it application/gzip or octet-stream).
struct MailWalk {
  explicit MailWalk(const ReadLimits& l) : limits(l) {}
  const ReadLimits& limits;
  std::size_t parts = 0;
  std::optional<Attachment> found;
  std::optional<Attachment> fallback;

  Result<void> walk(std::string_view entity, std::size_t depth) {
    if (found) return {};
    if (++parts > limits.max_mime_parts)
      return fail("more than " + std::to_string(limits.max_mime_parts) + " MIME parts",
                  Severity::permanent);
    const mime::HeaderSection h = mime::parse_header(entity);
    const std::string_view body = entity.substr(std::min(h.body, entity.size()));
    const mime::HeaderField* ctf = find_field(h, "Content-Type");
    ContentType ct = ctf ? parse_content_type(ctf->value) : ContentType{};
    if (ct.type.empty() || ct.type.find('/') == std::string::npos) ct.type = "text/plain";
    if (ct.type.starts_with("multipart/")) {
      if (depth + 1 > limits.max_mime_depth)
        return fail("MIME multiparts nested deeper than " + std::to_string(limits.max_mime_depth),
                    Severity::permanent);
      const auto b = ct.params.find("boundary");
      if (b == ct.params.end() || b->second.empty())
        return fail(ct.type + " without a boundary parameter", Severity::permanent);
      auto parts_of = split_multipart(body, b->second, limits.max_mime_parts);
      if (!parts_of) return tl::unexpected(parts_of.error());
      for (const std::string_view part : *parts_of) {
        auto ok = walk(part, depth + 1);
        if (!ok) return ok;
        if (found) return {};
      }
      return {};
    }
    const bool tlsrpt_type =
        ct.type == "application/tlsrpt+gzip" || ct.type == "application/tlsrpt+json";
    std::string filename;
    if (const mime::HeaderField* cd = find_field(h, "Content-Disposition")) {
      const ContentType disposition = parse_content_type(cd->value);
      if (const auto f = disposition.params.find("filename"); f != disposition.params.end())
        filename = f->second;
    }
    if (filename.empty())
      if (const auto n = ct.params.find("name"); n != ct.params.end()) filename = n->second;
    const bool named =
        ends_with_ci(filename, ".json.gz") || ends_with_ci(filename, ".json") ||
        ((ct.type == "application/gzip" || ct.type == "application/json") && !filename.empty());
    if (!tlsrpt_type && (!named || fallback)) return {};

    std::string cte;
    if (const mime::HeaderField* f = find_field(h, "Content-Transfer-Encoding"))
      cte = to_lower(trim(f->value));
    Attachment a;
    a.tlsrpt_type = tlsrpt_type;
    a.declared = ct.type;
    if (cte == "base64") {
      a.data = base64_decode(body);
    } else if (cte == "quoted-printable") {
      a.data = quoted_printable_decode(body);
    } else if (cte.empty() || cte == "7bit" || cte == "8bit" || cte == "binary") {
      a.data = std::string(body);
    } else {
      return fail(
          "the " + ct.type + " part has an unknown Content-Transfer-Encoding \"" + cte + "\"",
          Severity::permanent);
    }
    if (tlsrpt_type) {
      found = std::move(a);
    } else {
      fallback = std::move(a);
    }
    return {};
  }
};

Result<Attachment> attachment_of(std::string_view mail, const ReadLimits& limits) {
  // A message saved in mbox form starts with its "From " separator line.
  if (mail.starts_with("From ")) {
    const std::size_t eol = mail.find('\n');
    mail.remove_prefix(eol == std::string_view::npos ? mail.size() : eol + 1);
  }
  const mime::HeaderSection h = mime::parse_header(mail);
  if (h.fields.empty())
    return fail("neither a TLS report (JSON or gzip) nor a mail message", Severity::permanent);
  MailWalk w{limits};
  auto ok = w.walk(mail, 0);
  if (!ok) return tl::unexpected(ok.error());
  if (w.found) return std::move(*w.found);
  if (w.fallback) return std::move(*w.fallback);
  std::string what;
  if (const mime::HeaderField* ctf = find_field(h, "Content-Type")) {
    const ContentType ct = parse_content_type(ctf->value);
    what = ct.type;
    if (const auto rt = ct.params.find("report-type"); rt != ct.params.end())
      what += "; report-type=" + rt->second;
  } else {
    what = "no Content-Type";
  }
  return fail("not a TLS report mail (" + what +
                  "): no application/tlsrpt+gzip or application/tlsrpt+json part",
              Severity::permanent);
}

bool gzip_magic(std::string_view s) {
  return s.size() >= 2 && static_cast<unsigned char>(s[0]) == 0x1f &&
         static_cast<unsigned char>(s[1]) == 0x8b;
}

std::string_view skip_bom_and_space(std::string_view s) {
  if (s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  return s;
}

// The report inside gzip or as it is.
Result<ReceivedReport> from_payload(std::string_view payload, const ReadLimits& limits) {
  if (gzip_magic(payload)) {
    auto json_text = gunzip(payload, limits.max_json_bytes);
    if (!json_text) return tl::unexpected(json_text.error());
    return parse_report_json(*json_text, limits);
  }
  return parse_report_json(payload, limits);
}

}  // namespace

// ---- public ------------------------------------------------------------------

Result<std::string> gunzip(std::string_view data, std::size_t max_bytes) {
  if (data.size() > UINT_MAX) return fail("gzip data too large", Severity::permanent);
  Inflater inflater;
  if (!inflater.init()) return fail("gzip: inflateInit2 failed");
  z_stream& zs = inflater.stream();
  zs.next_in = reinterpret_cast<const Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  std::array<char, 65536> buffer{};
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer.data());
    zs.avail_out = static_cast<uInt>(buffer.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t produced = buffer.size() - zs.avail_out;
    if (out.size() + produced > max_bytes)
      return fail("decompresses to more than " + size_text(max_bytes) + " (the limit)",
                  Severity::permanent);
    out.append(buffer.data(), produced);
    if (rc == Z_STREAM_END) {
      // RFC 1952 section 2.2: members may follow one another; anything else
      // after the end (zero padding) is ignored, as gzip(1) does.
      const std::string_view rest(reinterpret_cast<const char*>(zs.next_in), zs.avail_in);
      if (!gzip_magic(rest)) return out;
      if (inflateReset(&zs) != Z_OK) return fail("gzip: inflateReset failed");
      continue;
    }
    if (rc == Z_OK) {
      if (zs.avail_in == 0 && zs.avail_out != 0)
        return fail("gzip data ends early (truncated)", Severity::permanent);
      continue;
    }
    if (rc == Z_BUF_ERROR) return fail("gzip data ends early (truncated)", Severity::permanent);
    if (rc == Z_MEM_ERROR) return fail("gzip: out of memory");
    return fail(std::string("not valid gzip data (") + (zs.msg ? zs.msg : "corrupt") + ")",
                Severity::permanent);
  }
}

bool parse_rfc3339(std::string_view s, Time& out) {
  // date-time = full-date "T" full-time (RFC 3339 section 5.6); "t" and
  // " " for "T" are allowed by its notes.
  const auto digits = [&](std::size_t pos, std::size_t n, int& v) {
    if (pos + n > s.size()) return false;
    v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) ||
      s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec))
    return false;
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  int offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (!digits(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, om) ||
        oh > 23 || om > 59)
      return false;
    offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return false;
  }
  if (i != s.size() || h > 23 || mi > 59 || sec > 60) return false;
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return false;
  // A leap second (":60") counts as the last second of its minute.
  out = static_cast<Time>(sys_days{ymd}.time_since_epoch().count()) * 86400 + h * 3600 + mi * 60 +
        std::min(sec, 59) - offset;
  return true;
}

static Result<ReceivedReport> parse_json_any(std::string_view text, const ReadLimits& limits) {
  if (text.size() > limits.max_json_bytes)
    return fail("report larger than " + size_text(limits.max_json_bytes) + " (the limit)",
                Severity::permanent);
  text = skip_bom_and_space(text);
  if (auto shape = check_json_shape(text, limits); !shape) return tl::unexpected(shape.error());
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, ...": the
    // part after the bracket says what and where.
    std::string what = e.what();
    if (const auto close = what.find("] "); what.starts_with("[json.") && close != what.npos)
      what.erase(0, close + 2);
    return fail("not valid JSON: " + what, Severity::permanent);
  }
  if (!doc.is_object())
    return fail("the report is a JSON " + std::string(doc.type_name()) + ", not an object",
                Severity::permanent);

  ReceivedReport report;
  Reader r{report.notes};
  auto org = r.wanted_text(doc, "organization-name", "");
  if (!org) return tl::unexpected(org.error());
  report.organization_name = std::move(*org);
  auto contact = r.wanted_text(doc, "contact-info", "");
  if (!contact) return tl::unexpected(contact.error());
  report.contact_info = std::move(*contact);
  auto id = r.wanted_text(doc, "report-id", "");
  if (!id) return tl::unexpected(id.error());
  report.report_id = std::move(*id);

  const auto range = doc.find("date-range");
  if (range == doc.end() || range->is_null()) {
    note(report.notes, "no date-range");
  } else {
    if (!range->is_object())
      return fail("date-range: expected an object, found " + std::string(range->type_name()),
                  Severity::permanent);
    for (const auto& [key, field] :
         {std::pair<std::string_view, Time*>{"start-datetime", &report.begin},
          {"end-datetime", &report.end}}) {
      auto v = r.text(*range, key, "date-range");
      if (!v) return tl::unexpected(v.error());
      if (!parse_rfc3339(*v, *field))
        return fail(
            "date-range." + std::string(key) + ": \"" + *v + "\" is not an RFC 3339 date-time",
            Severity::permanent);
    }
    report.has_range = true;
  }

  const auto policies = doc.find("policies");
  if (policies == doc.end() || policies->is_null())
    return fail("policies: missing (a report without them counts nothing)", Severity::permanent);
  if (!policies->is_array())
    return fail("policies: expected an array, found " + std::string(policies->type_name()),
                Severity::permanent);
  for (std::size_t i = 0; i < policies->size(); ++i) {
    auto p = read_policy(r, (*policies)[i], "policies[" + std::to_string(i) + "]");
    if (!p) return tl::unexpected(p.error());
    report.policies.push_back(std::move(*p));
  }
  return report;
}

static Result<std::string> from_mail_any(std::string_view mail, const ReadLimits& limits) {
  auto a = attachment_of(mail, limits);
  if (!a) return tl::unexpected(a.error());
  return std::move(a->data);
}

static Result<ReceivedReport> read_any(std::string_view bytes, const ReadLimits& limits) {
  const std::string_view start = skip_bom_and_space(bytes);
  if (start.empty()) return fail("empty file", Severity::permanent);
  if (start.front() == '{' || start.front() == '[') return parse_json_any(bytes, limits);
  if (gzip_magic(bytes)) return from_payload(bytes, limits);
  auto a = attachment_of(bytes, limits);
  if (!a) return tl::unexpected(a.error());
  auto report = from_payload(a->data, limits);
  if (!report) {
    report.error().message = "the " + a->declared + " attachment: " + report.error().message;
    return report;
  }
  if (!a->tlsrpt_type)
    note(report->notes, "the report attachment is " + a->declared + ", not application/tlsrpt+*");
  return report;
}

// Errors quote what the input said (a date, an encoding, a parser's view of
// the text): whatever it held, the message stays one printable line of at
// most 300 characters.
template <class T>
static Result<T> one_line(Result<T> r) {
  if (r) return r;
  std::string& m = r.error().message;
  for (char& c : m)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (m.size() > 300) m = m.substr(0, 297) + "...";
  if (m.empty()) m = "unreadable";
  return r;
}

Result<ReceivedReport> parse_report_json(std::string_view text, const ReadLimits& limits) {
  return one_line(parse_json_any(text, limits));
}

Result<std::string> report_from_mail(std::string_view mail, const ReadLimits& limits) {
  return one_line(from_mail_any(mail, limits));
}

Result<ReceivedReport> read_report(std::string_view bytes, const ReadLimits& limits) {
  return one_line(read_any(bytes, limits));
}

// ---- summary -----------------------------------------------------------------

namespace {

std::int64_t add_saturating(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::numeric_limits<std::int64_t>::max();
  return sum;
}

}  // namespace

void Summariser::add(const ReceivedReport& report, const std::string& source) {
  if (!report.report_id.empty()) {
    const auto [it, inserted] = seen_.emplace(report.report_id, source);
    if (!inserted) {
      duplicates_.push_back(Duplicate{report.report_id, source, it->second});
      return;
    }
  }
  ++reports_;
  Organization& org = organizations_[{report.organization_name, report.contact_info}];
  org.reports.push_back(
      ReportRef{report.report_id, source, report.has_range, report.begin, report.end});
  for (const std::string& n : report.notes) note(org.notes, n);
  for (const ReceivedPolicy& p : report.policies) {
    std::vector<std::string> mx = p.mx_hosts;
    std::sort(mx.begin(), mx.end());
    mx.erase(std::unique(mx.begin(), mx.end()), mx.end());
    PolicyTotals& t = org.policies[PolicyKey{p.policy_type, p.policy_domain, std::move(mx)}];
    t.successful = add_saturating(t.successful, p.successful);
    t.failed = add_saturating(t.failed, p.failed);
    for (const ReceivedFailure& f : p.failures) {
      std::int64_t& n =
          t.failures[FailureKey{f.result_type, f.sending_mta_ip, f.receiving_mx_hostname}];
      n = add_saturating(n, f.failed_session_count);
    }
  }
}

Summary Summariser::summary() const {
  Summary s;
  s.reports = reports_;
  s.duplicates = duplicates_;
  for (const auto& [key, org] : organizations_) {
    OrganizationSummary o;
    o.organization_name = key.first;
    o.contact_info = key.second;
    o.reports = org.reports;
    o.notes = org.notes;
    for (const ReportRef& r : org.reports) {
      if (!r.has_range) continue;
      o.begin = o.has_range ? std::min(o.begin, r.begin) : r.begin;
      o.end = o.has_range ? std::max(o.end, r.end) : r.end;
      o.has_range = true;
    }
    for (const auto& [pkey, totals] : org.policies) {
      PolicyRow row;
      std::tie(row.policy_type, row.policy_domain, row.mx_hosts) = pkey;
      row.successful = totals.successful;
      row.failed = totals.failed;
      for (const auto& [fkey, n] : totals.failures) {
        FailureRow f;
        std::tie(f.result_type, f.sending_mta_ip, f.receiving_mx_hostname) = fkey;
        f.sessions = n;
        row.failures.push_back(std::move(f));
      }
      o.policies.push_back(std::move(row));
    }
    s.organizations.push_back(std::move(o));
  }
  return s;
}

}  // namespace danemta::tlsrpt
