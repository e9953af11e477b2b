// https_server_test.cpp — the HTTP server example serving HTTPS (--tls-cert/--tls-key), spoken to
// by curl (a client that is not ours, skipped with a message where it is missing) and by a
// plain TCP client that never starts the handshake. Both serving styles. Timeouts here are hang
// guards only.
#include <doctest/doctest.h>

#if defined(AEM_HTTP_SERVER_PATH)

#include "support/child_process.hpp"
#include "support/loopback_client.hpp"
#include "support/run_command.hpp"
#include "unit/tls/test_certificates.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int kGuardSeconds = 20;

// CertificateFiles writes the test CA and the "localhost" server certificate to a fresh
// directory (removed afterwards).
struct CertificateFiles {
  CertificateFiles() {
    char pattern[] = "/tmp/aem_https_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir = pattern;
    const auto& certificates = tls_test::certificates();
    std::ofstream(dir / "ca.pem") << certificates.ca.certificate_pem;
    std::ofstream(dir / "cert.pem") << certificates.server.certificate_pem;
    std::ofstream(dir / "key.pem") << certificates.server.key_pem;
  }
  ~CertificateFiles() { std::filesystem::remove_all(dir); }
  std::string path(const char* name) const { return (dir / name).string(); }
  std::filesystem::path dir;
};

aem_test::ServerProcess start_https(const CertificateFiles& files, const std::string& style,
                                    std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--port",     "0", "--cores", "2", "--style", style, "--tls-cert", files.path("cert.pem"),
                                "--tls-key", files.path("key.pem")};
  args.insert(args.end(), more.begin(), more.end());
  return aem_test::ServerProcess(AEM_HTTP_SERVER_PATH, std::move(args), 0, std::chrono::seconds(kGuardSeconds));
}

bool have_curl() { return std::system("command -v curl > /dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("https_server: curl --cacert gets /hello and an echoed body over HTTP/1.1, in both styles") {
  if (!have_curl()) {
    MESSAGE("no curl program here: skipped");
    return;
  }
  CertificateFiles files;
  for (const std::string style : {"capsule", "registration"}) {
    CAPTURE(style);
    aem_test::ServerProcess server = start_https(files, style);
    const std::string url = "https://localhost:" + std::to_string(server.port());
    const std::string curl = "curl --silent --show-error --max-time " + std::to_string(kGuardSeconds) +
                             " --cacert " + files.path("ca.pem") + " --resolve localhost:" +
                             std::to_string(server.port()) + ":127.0.0.1 ";
    // Two requests on one connection (curl reuses it): the body of each, then the protocol
    // curl negotiated (ALPN http/1.1).
    const std::string hello =
        aem_test::run_command(curl + "-w '[%{http_version}]' " + url + "/hello " + url + "/hello 2>&1");
    CHECK(hello == "Hello, World!\n[1.1]Hello, World!\n[1.1]");
    // A 40 KB body through POST /echo comes back whole.
    const std::string body(40'000, 'x');
    std::ofstream(files.dir / "body.txt") << body;
    const std::string echoed =
        aem_test::run_command(curl + "--data-binary @" + files.path("body.txt") + " " + url + "/echo 2>&1");
    CHECK(echoed.size() == body.size());
    CHECK(echoed == body);
    // A client that does not trust the server's CA is refused by curl's own verification.
    const std::string untrusted = aem_test::run_command("curl --silent --max-time " + std::to_string(kGuardSeconds) +
                                                        " --cacert /dev/null --resolve localhost:" +
                                                        std::to_string(server.port()) + ":127.0.0.1 " + url +
                                                        "/hello; echo \"status $?\"");
    CHECK(untrusted.find("Hello") == std::string::npos);
    CHECK(untrusted.find("status 0") == std::string::npos);
    server.signal(SIGTERM);
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("https_server: a client that never sends a ClientHello is closed by the header timeout") {
  CertificateFiles files;
  for (const std::string style : {"capsule", "registration"}) {
    CAPTURE(style);
    aem_test::ServerProcess server = start_https(files, style, {"--header-timeout", "300ms"});
    const int fd = aem_test::guarded_tcp_socket(kGuardSeconds);
    REQUIRE(fd >= 0);
    REQUIRE(aem_test::connect_loopback(fd, server.port()));
    char byte = 0;
    // The server closes the connection (end of stream) without a byte; the hang guard is
    // SO_RCVTIMEO, which would make recv fail with EAGAIN instead.
    CHECK(::recv(fd, &byte, 1, 0) == 0);
    ::close(fd);
    server.signal(SIGTERM);
    CHECK(server.wait_exit() == 0);
  }
}

#endif  // AEM_HTTP_SERVER_PATH
