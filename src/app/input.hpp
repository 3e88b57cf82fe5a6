// Reading a message to send from a file or standard input.
#pragma once

#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

namespace danemta::app {

// The whole file, or standard input for "" and "-"; nullopt if unreadable.
inline std::optional<std::string> read_message(const std::string& path) {
  if (path.empty() || path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace danemta::app
