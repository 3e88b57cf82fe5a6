#include "app/cmd_passwd.hpp"

#include <openssl/crypto.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "auth/credentials.hpp"

namespace danemta::app {

namespace {

// Wipes the password it holds when it goes.
struct Secret {
  std::string text;
  ~Secret() { OPENSSL_cleanse(text.data(), text.size()); }
};

// One line of standard input without its line end; false at its end.
bool read_line(Secret& out) {
  if (!std::getline(std::cin, out.text)) return false;
  if (!out.text.empty() && out.text.back() == '\r') out.text.pop_back();
  return true;
}

// Asks on the terminal with echo off.
bool ask(const char* prompt, Secret& out) {
  termios saved{};
  const bool terminal = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (terminal) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::cerr << prompt << std::flush;
  const bool ok = read_line(out);
  if (terminal) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  std::cerr << "\n";
  return ok;
}

}  // namespace

int run_passwd(const std::string& user) {
  Secret password;
  if (::isatty(STDIN_FILENO)) {
    Secret again;
    if (!ask("Password: ", password) || !ask("Again: ", again)) {
      std::cerr << "danemta passwd: no password given\n";
      return 2;
    }
    if (password.text != again.text) {
      std::cerr << "danemta passwd: the passwords differ\n";
      return 2;
    }
  } else if (!read_line(password)) {
    std::cerr << "danemta passwd: no password on standard input\n";
    return 2;
  }
  auto entry = auth::make_entry(user, password.text);
  if (!entry) {
    std::cerr << "danemta passwd: " << entry.error().message << "\n";
    return 2;
  }
  std::cout << *entry << "\n";
  return 0;
}

}  // namespace danemta::app
