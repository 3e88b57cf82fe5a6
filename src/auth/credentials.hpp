// The user names and passwords SMTP AUTH accepts (RFC 4954 on the relay's
// submission listeners): a credential file of "user:hash" lines, the hash
// made by crypt(3) (libxcrypt: yescrypt by default, sha512-crypt, bcrypt
// ...). The format, the hash methods and why: docs/adr/0006-credentials.md.
// An optional third field lists the sender addresses (MAIL FROM) the user
// may use: addresses, "@domain" for any address at that domain, "<>" for
// the null sender, separated by commas. Without it the user may use any.
//
//   # comments and blank lines are ignored
//   alice@example.org:$y$j9T$4ZCo6B6u3QwKOMEdTQ3C60$cH64RtmFx8P0EI8.qiaWHPQEfmz3OTYHpFItEfoLIs0
//   app:$y$j9T$...:noreply@example.org,@alerts.example.org
//
// The file is read whole at start and on SIGHUP; a file that others may
// read or write is refused (it holds password hashes, which can be guessed
// at offline).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace danemta::auth {

// A user name in the file: 1 to 256 octets, none of them ':', white space or
// a control character (NUL, CR, LF, DEL ...). UTF-8 passes as it is.
bool valid_user(std::string_view user);

class Credentials {
 public:
  // The text of a credential file; errors name the source and line, and
  // are permanent. Refused: a line that is not "user:hash", an invalid user
  // name, a user twice, a hash crypt(3) does not know or deems too weak for
  // new use (DES, MD5-crypt, sha256-crypt with few rounds: libxcrypt's
  // crypt_checksalt), or one that is only a salt.
  static Result<Credentials> parse(std::string_view text, std::string_view source = "credentials");
  // Reads `path` and parses it. Also refused: not a regular file, readable
  // or writable by others, over 16 MiB.
  static Result<Credentials> load(const std::string& path);

  std::size_t size() const { return entries_.size(); }
  bool contains(std::string_view user) const { return entries_.find(user) != entries_.end(); }

  // Whether `password` is `user`'s. Runs crypt(3) for an unknown user too
  // (with a known user's method and cost), so that the time taken does not
  // tell which users exist; the hashes are compared in constant time. Slow
  // by design (yescrypt: tens of milliseconds): call it off the event loop.
  // Thread-safe.
  bool verify(std::string_view user, std::string_view password) const;

  // Whether `user` may send as `sender` (MAIL FROM's mailbox, "" for the
  // null sender): always for a user without a sender list; otherwise when
  // the list names the address (compared without regard to case), its
  // domain ("@domain"), or "<>" for the null sender. False for an unknown
  // user.
  bool may_send_as(std::string_view user, std::string_view sender) const;

 private:
  struct Entry {
    std::string hash;
    bool restricted = false;           // a sender list was given
    std::vector<std::string> senders;  // lower case: "a@b.example", "@b.example", "<>"
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

// A credential file line "user:hash" for `password`: yescrypt at libxcrypt's
// default cost with a fresh random salt (what `danemta passwd` prints).
// Errors: an invalid user name, an empty password or one with NUL, CR or LF,
// or one over 1024 octets.
Result<std::string> make_entry(std::string_view user, std::string_view password);

}  // namespace danemta::auth
