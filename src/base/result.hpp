// Result<T>: expected failures are values. Every error says whether retrying can help.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace danemta {

// Transient errors are retried; permanent ones are not. When in doubt a
// failure is transient: a wrong "permanent" loses mail.
enum class Severity { transient, permanent };

// Where callers must act on the kind of failure, not only report it.
enum class Cause {
  unspecified,
  storage_full,  // local storage is out of space (a full disk or file system quota)
};

struct Error {
  Severity severity = Severity::transient;
  std::string message;
  Cause cause = Cause::unspecified;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string message, Severity severity = Severity::transient) {
  return tl::unexpected<Error>(Error{severity, std::move(message), Cause::unspecified});
}

inline tl::unexpected<Error> fail(std::string message, Severity severity, Cause cause) {
  return tl::unexpected<Error>(Error{severity, std::move(message), cause});
}

}  // namespace danemta
