#include "auth/credentials.hpp"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

namespace danemta::auth {

namespace {

constexpr std::size_t kMaxUser = 256;
constexpr std::size_t kMaxPassword = 1024;
constexpr off_t kMaxFile = 16 * 1024 * 1024;
// What follows a hash's last '$' is its encoded hash: 43 characters or more
// for every method libxcrypt deems fit (yescrypt and sha256-crypt 43,
// sha512-crypt 86, bcrypt's salt and hash 53). A salt without its hash
// ends in the salt: 22 characters at most (yescrypt, bcrypt).
constexpr std::size_t kMinHashField = 31;

// crypt(3)'s working memory and the password as a C string, wiped after
// use.
struct CryptData {
  crypt_data data{};
  std::string phrase;
  ~CryptData() {
    OPENSSL_cleanse(&data, sizeof data);
    OPENSSL_cleanse(phrase.data(), phrase.size());
  }
};

bool valid_password(std::string_view password) {
  if (password.empty() || password.size() > kMaxPassword) return false;
  for (const char c : password)
    if (c == '\0' || c == '\r' || c == '\n') return false;
  return true;
}

// What is wrong with `hash` as a stored credential, or "" when nothing is.
std::string hash_problem(const std::string& hash) {
  if (hash.empty()) return "no hash after the user name";
  if (hash.front() != '$')
    return "not a crypt(3) hash (\"$y$...\", \"$6$...\", \"$2b$...\"; a traditional DES hash "
           "is too weak)";
  switch (crypt_checksalt(hash.c_str())) {
    case CRYPT_SALT_OK:
      break;
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
      return "hash method too weak for new use (make the entry again with danemta passwd)";
    default:
      return "not a hash crypt(3) knows";
  }
  const auto last = hash.rfind('$');
  if (hash.size() - last - 1 < kMinHashField)
    return "a salt without its hash (make the entry with danemta passwd)";
  return "";
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The sender list of a credential line: "a@b.example,@c.example,<>", each
// entry an address with '@', a domain after '@', or "<>"; kept in lower case.
tl::expected<std::vector<std::string>, std::string> parse_senders(std::string_view list) {
  std::vector<std::string> out;
  if (list.empty()) return tl::unexpected(std::string("an empty sender list after the hash"));
  for (;;) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    const bool fine = item == "<>" ||
                      (!item.empty() && item.size() <= 320 && item.find('@') != std::string::npos &&
                       item.back() != '@' && item.find('@') == item.rfind('@') &&
                       std::none_of(item.begin(), item.end(), [](char c) {
                         return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '<' ||
                                c == '>' || c == ',';
                       }));
    if (!fine)
      return tl::unexpected("sender \"" + std::string(item.substr(0, 64)) +
                            "\" is not an address, \"@domain\" or \"<>\"");
    out.push_back(lower(item));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

bool valid_user(std::string_view user) {
  if (user.empty() || user.size() > kMaxUser) return false;
  for (const char c : user) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == ':') return false;
  }
  return true;
}

Result<Credentials> Credentials::parse(std::string_view text, std::string_view source) {
  Credentials out;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto bad = [&](const std::string& what) {
      return fail(std::string(source) + ":" + std::to_string(number) + ": " + what,
                  Severity::permanent);
    };
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return bad("expected \"user:hash\"");
    const std::string_view user = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    // crypt(3) hashes never hold ':', so a second one starts the sender list.
    std::optional<std::string_view> list;
    if (const auto second = rest.find(':'); second != std::string_view::npos) {
      list = rest.substr(second + 1);
      rest = rest.substr(0, second);
    }
    const std::string hash(rest);
    if (!valid_user(user))
      return bad(
          "the user name must be 1 to 256 octets without ':', white space or control "
          "characters");
    if (hash.find_first_of(" \t") != std::string::npos)
      return bad("expected \"user:hash\" or \"user:hash:senders\" (white space in the hash)");
    if (const std::string problem = hash_problem(hash); !problem.empty())
      return bad("user " + std::string(user) + ": " + problem);
    Entry entry;
    entry.hash = hash;
    if (list) {
      auto senders = parse_senders(*list);
      if (!senders) return bad("user " + std::string(user) + ": " + senders.error());
      entry.restricted = true;
      entry.senders = std::move(*senders);
    }
    if (!out.entries_.emplace(std::string(user), std::move(entry)).second)
      return bad("user " + std::string(user) + " is listed twice");
  }
  return out;
}

Result<Credentials> Credentials::load(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot read credentials file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return fail("cannot read credentials file " + path + ": " + std::strerror(errno),
                Severity::permanent);
  if (!S_ISREG(st.st_mode))
    return fail("credentials file " + path + ": not a regular file", Severity::permanent);
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail("credentials file " + path + ": readable or writable by others (mode " + mode +
                    "); it holds password hashes: chmod o-rwx " + path,
                Severity::permanent);
  }
  if (st.st_size > kMaxFile)
    return fail("credentials file " + path + ": larger than 16 MiB", Severity::permanent);
  std::string text;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fail("cannot read credentials file " + path + ": " + std::strerror(errno),
                  Severity::permanent);
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > static_cast<std::size_t>(kMaxFile))
      return fail("credentials file " + path + ": larger than 16 MiB", Severity::permanent);
  }
  return parse(text, path);
}

bool Credentials::verify(std::string_view user, std::string_view password) const {
  if (entries_.empty()) return false;
  const auto it = entries_.find(user);
  const bool known = it != entries_.end();
  // An unknown user costs what a known one does: the first entry's hash is
  // the setting, and the result is thrown away.
  const std::string& stored = known ? it->second.hash : entries_.begin()->second.hash;
  const auto work = std::make_unique<CryptData>();
  work->phrase = valid_password(password) ? password : std::string_view("-");
  const char* computed = crypt_rn(work->phrase.c_str(), stored.c_str(), &work->data,
                                  static_cast<int>(sizeof work->data));
  const bool same = computed != nullptr && std::strlen(computed) == stored.size() &&
                    CRYPTO_memcmp(computed, stored.data(), stored.size()) == 0;
  return same && known && valid_password(password);
}

bool Credentials::may_send_as(std::string_view user, std::string_view sender) const {
  const auto it = entries_.find(user);
  if (it == entries_.end()) return false;
  const Entry& e = it->second;
  if (!e.restricted) return true;
  if (sender.empty()) return std::find(e.senders.begin(), e.senders.end(), "<>") != e.senders.end();
  const std::string address = lower(sender);
  const auto at = address.rfind('@');
  for (const std::string& allowed : e.senders) {
    if (allowed == address) return true;
    if (allowed.front() == '@' && at != std::string::npos &&
        std::string_view(address).substr(at) == allowed)
      return true;
  }
  return false;
}

Result<std::string> make_entry(std::string_view user, std::string_view password) {
  if (!valid_user(user))
    return fail(
        "the user name must be 1 to 256 octets without ':', white space or control "
        "characters",
        Severity::permanent);
  if (!valid_password(password))
    return fail("the password must be 1 to 1024 octets without NUL, CR or LF", Severity::permanent);
  // libxcrypt's default method (yescrypt) and cost, salt from the kernel.
  std::unique_ptr<char, decltype(&std::free)> setting(crypt_gensalt_ra(nullptr, 0, nullptr, 0),
                                                      &std::free);
  if (!setting) return fail(std::string("crypt_gensalt: ") + std::strerror(errno));
  const auto work = std::make_unique<CryptData>();
  work->phrase = password;
  const char* hash = crypt_rn(work->phrase.c_str(), setting.get(), &work->data,
                              static_cast<int>(sizeof work->data));
  if (hash == nullptr) return fail(std::string("crypt: ") + std::strerror(errno));
  return std::string(user) + ":" + hash;
}

}  // namespace danemta::auth
