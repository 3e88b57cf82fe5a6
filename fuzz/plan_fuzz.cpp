// libFuzzer target: the destination planner (dane::plan, RFC 7672) driven to
// completion on fuzzed DNS answers, then `danemta check`'s report and both
// renderers. Each query the planner asks for takes the next answer of the
// input: a flag byte (secure, bogus, havedata, nxdomain, rcode), a two-byte
// length and that many bytes of DNS message. Queries left when the input
// ends get a failed lookup. Checks: the plan completes; a host has a
// failure exactly when it is unusable; render_json gives valid JSON.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "check/report.hpp"
#include "dane/plan.hpp"
#include "dns/wire.hpp"

namespace {

using namespace danemta;

struct Input {
  const std::uint8_t* p;
  std::size_t left;

  // The next answer for `q`, or a failed lookup once the input is used up.
  dns::RawResult next() {
    dns::RawResult raw;
    if (left < 3) {
      raw.err = 1;
      raw.err_text = "no more fuzz input";
      left = 0;
      return raw;
    }
    const std::uint8_t flags = p[0];
    std::size_t n = static_cast<std::size_t>(p[1]) << 8 | p[2];
    p += 3;
    left -= 3;
    if (n > left) n = left;
    raw.secure = (flags & 1) != 0;
    raw.bogus = (flags & 2) != 0;
    raw.havedata = (flags & 4) != 0;
    raw.nxdomain = (flags & 8) != 0;
    raw.rcode = (flags >> 4) & 0x0f;
    if (raw.bogus) raw.why_bogus = "fuzzed";
    raw.packet.assign(p, p + n);
    p += n;
    left -= n;
    return raw;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr config::TlsPolicy kPolicies[] = {
      config::TlsPolicy::dane_only, config::TlsPolicy::dane, config::TlsPolicy::encrypt,
      config::TlsPolicy::may};
  dane::PlanOptions options;
  options.policy = kPolicies[data[0] & 3];
  Input in{data + 1, size - 1};

  dane::AnswerSet answers;
  dane::PlanStep step = dane::plan("example.org", answers, options);
  // Each round answers every missing query, so a plan needs few rounds
  // (MX, addresses, TLSA, CNAME links); a loop here is a planner bug.
  for (int round = 0; !step.complete(); ++round) {
    if (round > 64) __builtin_trap();
    for (const dns::Query& q : step.missing) answers.add(dns::build_answer(q, in.next()));
    step = dane::plan("example.org", answers, options);
  }
  for (const dane::HostPlan& h : step.plan.hosts) {
    if ((h.requirement == dane::Requirement::unusable) != h.failure.has_value()) __builtin_trap();
  }

  const check::Report report = check::make_report(step.plan, answers);
  if (!nlohmann::json::accept(check::render_json(report))) __builtin_trap();
  (void)check::render_text(report);
  return 0;
}
