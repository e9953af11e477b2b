// tls_interop_test.cpp — interoperability with OpenSSL's own command line tool: `openssl
// s_client` against an aem server, an aem client against `openssl s_server`. Skipped where the
// `openssl` program is missing.
#include "unit/tls/tls_helpers.hpp"

#include "support/run_command.hpp"

#include <aem/blocking.hpp>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;

namespace {

using aem_test::run_command;

bool have_openssl() { return std::system("openssl version > /dev/null 2>&1") == 0; }

// TempFiles writes the test certificates into a fresh directory, removed at the end.
struct TempFiles {
  std::string dir;
  TempFiles() {
    char pattern[] = "/tmp/aem_tls_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir = pattern;
    write("ca.pem", tls_test::certificates().ca.certificate_pem);
    write("cert.pem", tls_test::certificates().server.certificate_pem);
    write("key.pem", tls_test::certificates().server.key_pem);
  }
  ~TempFiles() { (void)std::system(("rm -rf " + dir).c_str()); }
  void write(const char* name, const std::string& text) const { std::ofstream(dir + "/" + name) << text; }
  std::string path(const char* name) const { return dir + "/" + name; }
};

}  // namespace

TEST_CASE("tls: openssl s_client talks to an aem server (verified, ALPN http/1.1)") {
  if (!have_openssl()) {
    MESSAGE("no openssl program here: skipped");
    return;
  }
  TempFiles files;
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    auto listener = aem_test::loopback_listener();
    const auto port = listener.local_address()->port();
    auto context = tls_test::server_context(tls_test::certificates().server, {"http/1.1"});
    std::string alpn;
    auto server = aem::spawn([&] {
      auto stream = tls_test::accept_tls(listener, context, 20s);
      alpn = std::string(stream.alpn());
      aem::BufferedStream io(stream);
      auto line = io.read_line(100, 20s);
      REQUIRE(line);
      REQUIRE(stream.write_all("echo: " + std::string(*line) + "\n", 20s));
      REQUIRE(stream.shutdown(5s));
    });
    REQUIRE(server);
    const std::string command = "echo hello | openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                                " -servername localhost -CAfile " + files.path("ca.pem") +
                                " -verify_return_error -alpn http/1.1 -ign_eof -quiet 2>&1";
    auto output = aem::blocking([&] { return run_command(command); }, {.deadline = 60s});
    REQUIRE(output);
    server->join();
    INFO(*output);
    CHECK(output->find("echo: hello") != std::string::npos);
    CHECK(alpn == "http/1.1");
  });
}

TEST_CASE("tls: an aem client talks to openssl s_server") {
  if (!have_openssl()) {
    MESSAGE("no openssl program here: skipped");
    return;
  }
  TempFiles files;
  std::uint16_t port = 0;
  {
    aem::Runtime probe(aem_test::config_for(1));
    probe.run([&] { port = aem_test::loopback_listener().local_address()->port(); });  // a free port
  }
  const std::string port_text = std::to_string(port);
  const std::string cert = files.path("cert.pem");
  const std::string key = files.path("key.pem");
  // -rev: each line comes back reversed. -naccept 1: one connection, then exit.
  std::vector<std::string> args = {"openssl", "s_server", "-accept", "127.0.0.1:" + port_text, "-cert", cert, "-key", key,
                                   "-rev", "-naccept", "1", "-quiet"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t child = -1;
  REQUIRE(::posix_spawnp(&child, "openssl", &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  std::string reply;
  std::string version;
  {
    aem::Runtime rt(aem_test::config_for(1));
    rt.run([&] {
      auto client = tls_test::client_context();
      aem::Result<aem::tls::Stream> stream = aem::errc::timed_out;
      for (int attempt = 0; attempt < 100; ++attempt) {  // until s_server listens
        stream = aem::tls::Stream::connect(client, "localhost", port, 10s);
        if (stream || stream.error() != std::errc::connection_refused) break;
        aem::this_capsule::sleep_for(50ms);
      }
      REQUIRE_MESSAGE(stream, stream.error().message());
      version = std::string(stream->version());
      REQUIRE(stream->write_all("hello aem\n", 10s));
      aem::BufferedStream io(*stream);
      auto line = io.read_line(100, 10s);
      REQUIRE_MESSAGE(line, line.error().message());
      reply = std::string(*line);
      (void)stream->shutdown(5s);
    });
  }
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(reply == "mea olleh");
  CHECK(version == "TLSv1.3");
}
