// Small text helpers shared by the modules (ASCII only: DNS names and SMTP are ASCII).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace danemta {

// Lower-cases ASCII letters and removes one trailing dot: the form every
// module uses to compare and store domain names ("example.org").
std::string normalize_domain(std::string_view name);

std::string to_hex(std::span<const std::uint8_t> bytes);

// Hex digits to bytes; false on odd length or a non-hex character.
bool from_hex(std::string_view hex, std::vector<std::uint8_t>& out);

std::string_view trim(std::string_view s);

// ASCII case-insensitive equality (SMTP verbs, header field names).
bool iequals(std::string_view a, std::string_view b);

}  // namespace danemta
