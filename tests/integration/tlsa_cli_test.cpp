// `danemta tlsa`: records for certificate files and for a live server, checked
// against the lab's independent TLSA computation.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "lab/certs.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;

std::string tlsa(const std::string& args) {
  lab::CommandResult r = lab::run_command(std::string(DANEMTA_BINARY) + " tlsa " + args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return r.out;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path() / "danemta-tlsa-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(TlsaCli, LeafIssuerAndAllFromAChainFile) {
  TempDir dir;
  auto chain = lab::private_ca({"mx1.example.org"});
  auto files = lab::write_chain_files(chain, dir.path());

  std::string leaf = tlsa(files.chain.string());
  EXPECT_NE(leaf.find("_25._tcp.mx1.example.org. IN TLSA " + lab::tlsa_rdata(chain.leaf, 3, 1, 1)),
            std::string::npos)
      << leaf;

  std::string issuer = tlsa(files.chain.string() + " --usage 2 --port 2525");
  EXPECT_NE(issuer.find("_2525._tcp.mx1.example.org. IN TLSA " +
                        lab::tlsa_rdata(*chain.issuer(), 2, 1, 1)),
            std::string::npos)
      << issuer;

  std::string all = tlsa(files.chain.string() + " --all --host MX.Example.ORG.");
  EXPECT_NE(all.find(lab::tlsa_rdata(chain.leaf, 3, 1, 1)), std::string::npos) << all;
  EXPECT_NE(all.find(lab::tlsa_rdata(*chain.issuer(), 2, 1, 1)), std::string::npos) << all;
  EXPECT_NE(all.find("_25._tcp.mx.example.org."), std::string::npos) << all;

  std::string sha512 = tlsa(files.leaf.string() + " --selector 0 --mtype 2");
  EXPECT_NE(sha512.find(lab::tlsa_rdata(chain.leaf, 3, 0, 2)), std::string::npos) << sha512;
}

TEST(TlsaCli, BadInputGetsOneClearLine) {
  TempDir dir;
  auto chain = lab::self_signed({"mx.example.org"});
  auto files = lab::write_chain_files(chain, dir.path());
  struct Case {
    std::string args;
    std::string says;
  } cases[] = {
      {"/nonexistent.pem", "cannot read /nonexistent.pem"},
      {files.key.string(), "not a PEM certificate"},
      {files.leaf.string() + " --usage 2", "holds only the leaf certificate"},
      {"", "give either a certificate file or --connect"},
      {"--connect 'host:99999'", "expected HOST[:PORT]"},
      {files.leaf.string() + " --usage 1", "--usage"},
  };
  for (const Case& c : cases) {
    lab::CommandResult r = lab::run_command(std::string(DANEMTA_BINARY) + " tlsa " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

TEST(TlsaCli, LiveServerOverStarttls) {
  lab::Receivers rx(51);
  auto chain = lab::private_ca({"mx.live51.example"});
  lab::Receiver& mx = rx.add(10, lab::Receivers::with_chain(chain, "mx.live51.example"));
  std::string out = tlsa("--connect " + rx.ip(10) + ":" + std::to_string(rx.port()) +
                         " --starttls --all --host mx.live51.example");
  // The owner name follows the port connected to unless --port says otherwise.
  EXPECT_NE(out.find("_" + std::to_string(rx.port()) + "._tcp.mx.live51.example. IN TLSA " +
                     lab::tlsa_rdata(chain.leaf, 3, 1, 1)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(lab::tlsa_rdata(*chain.issuer(), 2, 1, 1)), std::string::npos) << out;
  ASSERT_FALSE(mx.sessions().empty());
  EXPECT_TRUE(mx.sessions()[0].starttls_completed);
  EXPECT_TRUE(mx.sessions()[0].messages.empty());

  lab::CommandResult refused = lab::run_command(std::string(DANEMTA_BINARY) + " tlsa --connect " +
                                                rx.ip(99) + ":" + std::to_string(rx.port()));
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.out.find(rx.ip(99)), std::string::npos) << refused.out;
}

}  // namespace
