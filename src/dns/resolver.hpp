// The resolver interface: the one way danemta asks DNS questions.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dns/answer.hpp"

namespace danemta::dns {

struct Query {
  std::string name;  // normalized
  RrType type = RrType::A;

  friend bool operator==(const Query&, const Query&) = default;
  friend auto operator<=>(const Query&, const Query&) = default;
};

// Resolves queries and validates the answers (DNSSEC). Implementations are
// driven by the caller's event loop; `done` runs on that loop once every
// query has an Answer (same order as `queries`). An Answer always comes back:
// failures are Answers with Security::indeterminate and a reason.
class Resolver {
 public:
  virtual ~Resolver() = default;
  virtual void resolve(std::vector<Query> queries,
                       std::function<void(std::vector<Answer>)> done) = 0;
};

}  // namespace danemta::dns
