// A message's text read in pieces, so that a large message is never held
// whole in memory: the spool hands one out, the SMTP client sends from it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace danemta {

class TextSource {
 public:
  virtual ~TextSource() = default;
  // Appends up to `max` further octets to `out`; 0 at the end of the text.
  virtual Result<std::size_t> read(std::string& out, std::size_t max) = 0;
  // Starts again from the first octet.
  virtual Result<void> rewind() = 0;
  // Octets in the whole text.
  virtual std::size_t size() const = 0;
};

// The text of a string the caller keeps alive.
class ViewSource final : public TextSource {
 public:
  explicit ViewSource(std::string_view text) : text_(text) {}
  Result<std::size_t> read(std::string& out, std::size_t max) override {
    const std::size_t n = std::min(max, text_.size() - at_);
    out.append(text_.substr(at_, n));
    at_ += n;
    return n;
  }
  Result<void> rewind() override {
    at_ = 0;
    return {};
  }
  std::size_t size() const override { return text_.size(); }

 private:
  std::string_view text_;
  std::size_t at_ = 0;
};

}  // namespace danemta
