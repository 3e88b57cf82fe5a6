// The page of `danemta web`, as pure functions: the form, the result page
// that fills itself from /events, the report as an HTML fragment (from the
// same check::Report `danemta check --json` prints), and the static files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "check/report.hpp"

namespace danemta::web {

std::string escape(std::string_view text);

// The form alone, with an optional message (bad input) above it.
std::string form_page(std::string_view message, std::string_view domain, std::string_view port);

// The page for one check: the form, a progress list and the result area,
// which app.js fills from /events?domain=...&port=....
std::string check_page(const std::string& domain, std::uint16_t port, bool port_given);

// A refusal (429 too many checks, 503 busy) as a page of its own.
std::string refusal_page(std::string_view title, std::string_view text);

// The report: verdict first, then MX, hosts with their TLSA records and the
// probes of their addresses. `json_link` is the /api/check URL of the same
// result.
std::string render_report(const check::Report& r, std::string_view json_link);

// The verdict's headline: "OK", "degraded" or "FAIL".
std::string_view headline(check::Status s);

extern const std::string_view style_css;
extern const std::string_view app_js;

}  // namespace danemta::web
