#include "sendmail/command_line.hpp"

#include "base/text.hpp"

namespace danemta::sendmail {

namespace {

tl::unexpected<Error> usage(const std::string& what) {
  return fail(what, Severity::permanent);
}

// Flags that take an argument (joined or the next word).
bool takes_argument(char c) {
  return std::string_view("ABbCFfhLNOopRrVX").find(c) != std::string_view::npos;
}

// "<a@b>" -> "a@b", "<>" -> "": how a sender may be written after -f.
std::string strip_brackets(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

// -b MODE.
Result<void> mode(std::string_view m, Options& o) {
  if (m == "m") {
    o.mode = Mode::deliver;
    return {};
  }
  if (m == "p") {
    o.mode = Mode::queue_list;
    return {};
  }
  const std::string flag = "-b" + std::string(m);
  if (m == "s")
    return usage(flag +
                 " (SMTP on standard input) is not offered: speak SMTP to the relay's listener "
                 "instead");
  if (m == "d" || m == "D") return usage(flag + ": the daemon is `danemta relay`");
  if (m == "i") return usage(flag + " (newaliases): danemta has no aliases database");
  if (m == "v" || m == "t" || m == "h" || m == "H" || m == "a" || m == "P" || m == "l")
    return usage(flag + " is not offered by danemta's sendmail (only -bm and -bp)");
  return usage(flag + ": unknown mode (danemta's sendmail offers -bm and -bp)");
}

Result<void> apply(char flag, std::string_view value, Options& o) {
  const std::string given = std::string("-") + flag + std::string(value);
  switch (flag) {
    case 'f':
    case 'r':
      o.sender = strip_brackets(value);
      return {};
    case 'F':
      o.full_name = std::string(value);
      return {};
    case 'C':
      if (value.empty()) return usage("-C needs a configuration file");
      o.config_path = std::string(value);
      return {};
    case 'b':
      return mode(value, o);
    case 'o':
      // -oi: a lone dot does not end the message; the other -oX options
      // (error mode -oe, delivery mode -od, queue directory -oQ...) are
      // decided by the relay.
      if (value == "i") {
        o.dot_ends = false;
      } else {
        o.ignored.push_back(given);
      }
      return {};
    case 'O':
      // -O IgnoreDots[=true], the long form of -oi.
      if (iequals(value, "IgnoreDots") || iequals(value, "IgnoreDots=true") ||
          iequals(value, "IgnoreDots=t")) {
        o.dot_ends = false;
      } else if (iequals(value, "IgnoreDots=false") || iequals(value, "IgnoreDots=f")) {
        o.dot_ends = true;
      } else {
        o.ignored.push_back(given);
      }
      return {};
    default:
      // -A -B -h -L -N -R -V -X -p: submission program, body type, hop
      // count, log tag, DSN NOTIFY/RET/ENVID (the relay offers no DSN
      // extension), log file, protocol.
      o.ignored.push_back(given);
      return {};
  }
}

}  // namespace

Result<Options> parse_command_line(const std::vector<std::string>& args) {
  Options o;
  bool operands_only = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (operands_only || a.size() < 2 || a[0] != '-') {
      if (!a.empty()) o.recipients.push_back(a);
      continue;
    }
    if (a == "--") {
      operands_only = true;
      continue;
    }
    for (std::size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      if (takes_argument(c)) {
        std::string value;
        if (j + 1 < a.size()) {
          value = a.substr(j + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return usage(std::string("-") + c + " needs an argument");
        }
        if (auto ok = apply(c, value, o); !ok) return tl::unexpected(ok.error());
        break;
      }
      if (c == 'q') {
        // -q alone runs the queue now; -qINTERVAL (a queue runner daemon)
        // and -qR/-qS/-qI (partial runs) are not offered.
        if (j + 1 < a.size())
          return usage(a +
                       ": the relay runs its queue by itself; `danemta queue flush` runs it now");
        o.mode = Mode::flush;
        break;
      }
      switch (c) {
        case 't':
          o.extract = true;
          break;
        case 'i':
          o.dot_ends = false;
          break;
        case 'v':
          o.verbose = true;
          break;
        case 'G':  // a relayed submission
        case 'U':  // an initial user submission
        case 'm':  // "me too" (obsolete)
        case 'n':  // no aliasing: danemta has no aliases
          o.ignored.push_back(std::string("-") + c);
          break;
        default:
          return usage(std::string("unknown flag -") + c);
      }
    }
  }
  return o;
}

}  // namespace danemta::sendmail
