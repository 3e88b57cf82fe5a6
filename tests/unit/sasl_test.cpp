// AUTH's pieces as the server reads them (smtp/sasl.hpp): strict base64
// (RFC 4648), the AUTH command line, PLAIN (RFC 4616) and LOGIN messages.
#include "smtp/sasl.hpp"

#include <gtest/gtest.h>

#include <string>

namespace danemta::smtp {
namespace {

using namespace std::string_literals;

TEST(Sasl, Base64RoundTripsEveryLength) {
  std::string data;
  for (int i = 0; i < 70; ++i) {
    const std::string encoded = encode_base64(data);
    EXPECT_EQ(encoded.size() % 4, 0u);
    const auto decoded = decode_base64_strict(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, data);
    data += static_cast<char>(i * 37 + 11);
  }
  // RFC 4648 section 10 test vectors.
  EXPECT_EQ(encode_base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(encode_base64("fo"), "Zm8=");
  EXPECT_EQ(encode_base64("f"), "Zg==");
  EXPECT_EQ(*decode_base64_strict("Zm9vYg=="), "foob");
}

TEST(Sasl, Base64RefusesWhatIsNotStrictlyBase64) {
  for (const char* bad : {"Zm9vYmF", "Zm9v YmFy", "Zm9v\r\nYmFy", "Zm9vYmF$", "Zg=", "Zg===",
                          "Z===", "====", "Zm=v", "Zh==", "Zm9=", "=Zm9", "Zm9vYg==Zm9v"}) {
    EXPECT_FALSE(decode_base64_strict(bad)) << bad;
  }
  EXPECT_EQ(*decode_base64_strict(""), "");
}

TEST(Sasl, AuthCommandLine) {
  AuthCommand c = parse_auth_command("PLAIN AGFsaWNlAHNlY3JldA==");
  EXPECT_EQ(c.problem, AuthCommand::Problem::none);
  EXPECT_EQ(c.mechanism, Mechanism::plain);
  EXPECT_EQ(c.initial_response, "AGFsaWNlAHNlY3JldA==");
  c = parse_auth_command("login");
  EXPECT_EQ(c.problem, AuthCommand::Problem::none);
  EXPECT_EQ(c.mechanism, Mechanism::login);
  EXPECT_FALSE(c.initial_response);
  EXPECT_EQ(parse_auth_command("CRAM-MD5").problem, AuthCommand::Problem::unsupported);
  EXPECT_EQ(parse_auth_command("").problem, AuthCommand::Problem::syntax);
  EXPECT_EQ(parse_auth_command("PLAIN a b").problem, AuthCommand::Problem::syntax);
}

TEST(Sasl, Responses) {
  EXPECT_EQ(response_kind("*"), ResponseKind::cancel);
  EXPECT_EQ(response_kind("Kg=="), ResponseKind::data);
  EXPECT_EQ(decode_response("="), "") << "RFC 4954 section 4: an empty response";
  EXPECT_FALSE(decode_response("")) << "nothing at all is not a response";
  EXPECT_EQ(decode_response("YWxpY2U="), "alice");
}

TEST(Sasl, PlainMessages) {
  ParsedCredentials p = parse_plain("\0alice\0secret"s);
  EXPECT_EQ(p.problem, CredentialProblem::none);
  EXPECT_EQ(p.credentials.user, "alice");
  EXPECT_EQ(p.credentials.password, "secret");
  p = parse_plain("alice\0alice\0secret"s);
  EXPECT_EQ(p.problem, CredentialProblem::none) << "authzid = authcid is no proxy";
  p = parse_plain("bob\0alice\0secret"s);
  EXPECT_EQ(p.problem, CredentialProblem::authzid);
  EXPECT_EQ(p.credentials.user, "alice");
  EXPECT_TRUE(p.credentials.password.empty());
  EXPECT_EQ(parse_plain("alice secret").problem, CredentialProblem::malformed);
  EXPECT_EQ(parse_plain("\0alice"s).problem, CredentialProblem::malformed);
  EXPECT_EQ(parse_plain("\0\0secret"s).problem, CredentialProblem::malformed);
  EXPECT_EQ(parse_plain("\0alice\0"s).problem, CredentialProblem::malformed);
  EXPECT_EQ(parse_plain("\0alice\0se\0cret"s).problem, CredentialProblem::bad_character);
  EXPECT_EQ(parse_plain("\0al\nice\0secret"s).problem, CredentialProblem::bad_character);
  EXPECT_TRUE(parse_plain("\0al\nice\0secret"s).credentials.user.empty())
      << "a user name that cannot be logged is not kept";
  EXPECT_EQ(parse_plain("\0alice\0"s + std::string(1025, 'x')).problem,
            CredentialProblem::too_long);
}

TEST(Sasl, LoginMessages) {
  ParsedCredentials p = check_login("alice", "secret");
  EXPECT_EQ(p.problem, CredentialProblem::none);
  EXPECT_EQ(p.credentials.password, "secret");
  EXPECT_EQ(check_login("", "secret").problem, CredentialProblem::malformed);
  EXPECT_EQ(check_login("alice", "").problem, CredentialProblem::malformed);
  EXPECT_EQ(check_login("alice", "a\rb").problem, CredentialProblem::bad_character);
}

TEST(Sasl, PrintableUser) {
  EXPECT_EQ(printable_user("alice@example.org"), "alice@example.org");
  EXPECT_EQ(printable_user("a b(c)\\d\xc3\xa9"), "a?b?c??d??");
  EXPECT_EQ(printable_user(std::string(100, 'u')).size(), 64u);
}

}  // namespace
}  // namespace danemta::smtp
