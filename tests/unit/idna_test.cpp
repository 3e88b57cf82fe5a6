// base/idna: domains with U-labels become A-labels for DNS.
#include "base/idna.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace danemta {
namespace {

TEST(Idna, UnicodeLabelsBecomeALabels) {
  EXPECT_EQ(to_a_labels("b\xc3\xbc"
                        "cher.example")
                .value(),
            "xn--bcher-kva.example");
  // UTS #46 mapping: upper case folded first, the trailing dot dropped.
  EXPECT_EQ(to_a_labels("B\xc3\x9c"
                        "CHER.Example.")
                .value(),
            "xn--bcher-kva.example");
  // Non-transitional: sharp s stays itself (IDNA2008), not "ss".
  EXPECT_EQ(to_a_labels("fa\xc3\x9f.example").value(), "xn--fa-hia.example");
  // Only the labels that need it change.
  EXPECT_EQ(to_a_labels("mx.b\xc3\xbc"
                        "cher.Example")
                .value(),
            "mx.xn--bcher-kva.example");
}

TEST(Idna, AsciiNamesAreOnlyLowerCased) {
  EXPECT_FALSE(has_non_ascii("Example.ORG"));
  EXPECT_EQ(to_a_labels("Example.ORG.").value(), "example.org");
  EXPECT_EQ(to_a_labels("xn--bcher-kva.example").value(), "xn--bcher-kva.example");
  // Not an IDN question: an ASCII name is passed through as it is.
  EXPECT_EQ(to_a_labels("a_b.example").value(), "a_b.example");
}

TEST(Idna, InvalidNamesAreRefusedWithAReason) {
  for (const std::string& bad : std::vector<std::string>{
           "a\xff.example",                      // not UTF-8
           "a\xc3.example",                      // truncated UTF-8
           "\xe2\x98\x83-\xe2\x8c\x98.example",  // symbols (disallowed in IDNA2008)
       }) {
    EXPECT_TRUE(has_non_ascii(bad));
    auto r = to_a_labels(bad);
    ASSERT_FALSE(r) << bad << " -> " << r.value();
    EXPECT_EQ(r.error().severity, Severity::permanent);
    EXPECT_EQ(r.error().message.rfind("not a valid internationalized domain name: ", 0), 0u)
        << r.error().message;
  }
}

}  // namespace
}  // namespace danemta
