// libFuzzer target: the sendmail command line (sendmail/command_line.hpp),
// the flags local programs pass, on arbitrary bytes split into arguments at
// NUL. Checks its contract: an error says what is wrong; a parsed command
// line names only recipients that were arguments, and a sender taken from
// one (or "" for the null sender).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sendmail/command_line.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::size_t start = 0;
  while (start <= input.size() && args.size() < 64) {
    std::size_t end = input.find('\0', start);
    if (end == std::string_view::npos) end = input.size();
    args.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  const auto parsed = danemta::sendmail::parse_command_line(args);
  if (!parsed) {
    if (parsed.error().message.empty()) __builtin_trap();
    return 0;
  }
  // Recipients are whole arguments; the sender is (part of) one: a flag's
  // value may be glued to it (-fuser@example.org) or stand alone, trimmed
  // and without its angle brackets.
  for (const std::string& r : parsed->recipients)
    if (std::find(args.begin(), args.end(), r) == args.end()) __builtin_trap();
  if (parsed->sender && !parsed->sender->empty() &&
      std::none_of(args.begin(), args.end(), [&parsed](const std::string& a) {
        return a.find(*parsed->sender) != std::string::npos;
      }))
    __builtin_trap();
  return 0;
}
