// Result<T>: expected failures are values. Every error says whether retrying can help.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace danemta {

// Transient errors are retried; permanent ones are not. When in doubt a
// failure is transient: a wrong "permanent" loses mail.
enum class Severity { transient, permanent };

struct Error {
  Severity severity = Severity::transient;
  std::string message;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string message, Severity severity = Severity::transient) {
  return tl::unexpected<Error>(Error{severity, std::move(message)});
}

}  // namespace danemta
