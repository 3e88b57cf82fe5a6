#include "base/text.hpp"

#include <gtest/gtest.h>

namespace danemta {
namespace {

TEST(Text, NormalizeDomainLowercasesAndDropsTrailingDot) {
  EXPECT_EQ(normalize_domain("MX1.Example.ORG."), "mx1.example.org");
  EXPECT_EQ(normalize_domain("example.org"), "example.org");
  EXPECT_EQ(normalize_domain("."), ".");
  EXPECT_EQ(normalize_domain(""), "");
}

TEST(Text, HexRoundTrip) {
  std::vector<std::uint8_t> bytes;
  ASSERT_TRUE(from_hex("00ff10Ab", bytes));
  EXPECT_EQ(bytes, (std::vector<std::uint8_t>{0x00, 0xff, 0x10, 0xab}));
  EXPECT_EQ(to_hex(bytes), "00ff10ab");
  EXPECT_FALSE(from_hex("abc", bytes));
  EXPECT_FALSE(from_hex("zz", bytes));
}

TEST(Text, Trim) {
  EXPECT_EQ(trim("  a b \r\n"), "a b");
  EXPECT_EQ(trim(""), "");
}

}  // namespace
}  // namespace danemta
