// http_server_test.cpp — the HTTP server example (examples/http_server), run as a program and
// spoken to over loopback sockets: keep-alive, pipelining, bodies, static files, errors, limits,
// timeouts and graceful shutdown, in both serving styles. Timeouts here are hang guards only:
// the tests assert what happens, never how fast.
#include <doctest/doctest.h>

#if defined(AEM_HTTP_SERVER_PATH)

#include "support/child_process.hpp"
#include "support/loopback_client.hpp"
#include "support/net_helpers.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;

const std::string kStyles[] = {"capsule", "registration"};
constexpr int kGuardSeconds = 20;  // no step of a test should come near this

// ---- the server process ---------------------------------------------------------------------

// ServerProcess runs the server with `args` and reads the port from its "listening on" line
// (aem_test::ServerProcess, with this file's hang guard).
class ServerProcess : public aem_test::ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args)
      : aem_test::ServerProcess(AEM_HTTP_SERVER_PATH, std::move(args), 0, std::chrono::seconds(kGuardSeconds)) {}
};

// ---- a plain blocking client -----------------------------------------------------------------

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  explicit Client(int port, int receive_buffer = 0) {
    fd_ = aem_test::guarded_tcp_socket(kGuardSeconds, receive_buffer);
    REQUIRE(fd_ >= 0);
    connected_ = aem_test::connect_loopback(fd_, port);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // send writes all of `data`; false if the connection is gone.
  bool send(std::string_view data) { return aem_test::send_all(fd_, data); }

  // response reads one response (interim ones too); fails the test if none comes.
  Response response() {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) REQUIRE_MESSAGE(fill(), "no response head");
    Response r;
    std::string_view head(buffer_.data(), end + 2);
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    REQUIRE(status_line.starts_with("HTTP/1.1 "));
    r.status = std::stoi(std::string(status_line.substr(9, 3)));
    head.remove_prefix(line_end + 2);
    while (!head.empty()) {
      const std::size_t e = head.find("\r\n");
      const std::string_view line = head.substr(0, e);
      const std::size_t colon = line.find(':');
      std::string name(line.substr(0, colon));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(line.substr(line.find_first_not_of(' ', colon + 1)));
      head.remove_prefix(e + 2);
    }
    buffer_.erase(0, end + 4);
    const std::size_t length = r.headers.count("content-length") != 0 ? std::stoull(r.headers["content-length"]) : 0;
    if (!head_only_) {
      while (buffer_.size() < length) REQUIRE_MESSAGE(fill(), "response body cut off");
      r.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    }
    return r;
  }

  // exchange sends a request and reads its response.
  Response exchange(std::string_view request) {
    REQUIRE(send(request));
    return response();
  }

  // closed_by_peer reads until the peer ends the connection (true), or the guard passes (false).
  // Unread response bytes are dropped.
  bool closed_by_peer() {
    buffer_.clear();
    while (fill()) buffer_.clear();
    return eof_;
  }

  // peer_gone_now reports, without waiting and without taking any byte, whether the peer has
  // ended the connection (with nothing left to read).
  bool peer_gone_now() {
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  // readable_now reports, without waiting, whether bytes (or the end) have arrived.
  bool readable_now() { return readable_within(0ms); }
  // readable_within waits up to `wait` for bytes (or the end) to arrive.
  bool readable_within(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    return !buffer_.empty() || ::poll(&p, 1, static_cast<int>(wait.count())) == 1;
  }

  void expect_head_only(bool on) { head_only_ = on; }
  // read_exact_body reads `n` body bytes of a response whose head was read.
  std::string read_raw(std::size_t n) {
    while (buffer_.size() < n) REQUIRE_MESSAGE(fill(), "cut off");
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
  }

 private:
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    eof_ = n == 0 || errno == ECONNRESET;
    return false;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  bool head_only_ = false;
  std::string buffer_;
};

std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

std::string post(std::string_view target, std::string_view body) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

std::string pattern_text(std::size_t size, std::uint64_t seed) {
  return aem_test::as_string(aem_test::pattern(size, seed));
}

// DocumentRoot is a temporary directory of files to serve.
class DocumentRoot {
 public:
  DocumentRoot() {
    char name[] = "/tmp/aem_http_test_XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path_ = name;
  }
  ~DocumentRoot() { std::filesystem::remove_all(path_); }
  void add(const std::string& name, const std::string& content) const {
    std::filesystem::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary) << content;
  }
  std::string path() const { return path_.string(); }
  // add_fifo makes a named pipe that nothing ever writes to.
  void add_fifo(const std::string& name) const { REQUIRE(::mkfifo((path_ / name).c_str(), 0644) == 0); }
  // add_directory makes an empty directory (no index.html).
  void add_directory(const std::string& name) const { std::filesystem::create_directories(path_ / name); }
  // add_socket binds a Unix socket at `name`; the returned descriptor keeps it listening.
  int add_socket(const std::string& name) const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = (path_ / name).string();
    REQUIRE(path.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    return fd;
  }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> args(const std::string& style, std::vector<std::string> more = {}) {
  std::vector<std::string> all{"--port", "0", "--cores", "2", "--style", style};
  all.insert(all.end(), more.begin(), more.end());
  return all;
}

}  // namespace

TEST_CASE("http_server: GET /hello answers exactly Hello, World! on a kept-alive connection") {
  // The loop's tuning (coalescing, no idle poll) changes when completions are taken, not what
  // is answered.
  std::vector<std::pair<std::string, std::vector<std::string>>> runs;
  for (const std::string& style : kStyles) {
    runs.push_back({style, {}});
    runs.push_back({style, {"--coalesce-us", "50", "--idle-spin-us", "0"}});
  }
  for (const auto& [style, tuning] : runs) {
    CAPTURE(style);
    CAPTURE(tuning.size());  // 0: the defaults
    ServerProcess server(args(style, tuning));
    Client client(server.port());
    REQUIRE(client.connected());
    for (int i = 0; i < 20; ++i) {
      const Response r = client.exchange(get("/hello"));
      CHECK(r.status == 200);
      CHECK(r.body == "Hello, World!\n");
      CHECK(r.header("content-type") == "text/plain");
      CHECK(r.header("connection").empty());  // HTTP/1.1: kept alive without saying so
    }
    client.expect_head_only(true);
    const Response head = client.exchange("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n");
    CHECK(head.status == 200);
    CHECK(head.header("content-length") == "14");
    client.expect_head_only(false);
    CHECK(client.exchange(get("/hello")).body == "Hello, World!\n");  // nothing was sent after the HEAD's head
    server.signal(SIGTERM);
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("http_server: pipelined requests are answered in order") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    Client client(server.port());
    std::string batch;
    for (int i = 0; i < 200; ++i) batch += i % 3 == 0 ? get("/hello") : post("/echo", "request " + std::to_string(i));
    REQUIRE(client.send(batch));
    for (int i = 0; i < 200; ++i) {
      const Response r = client.response();
      REQUIRE(r.status == 200);
      CHECK(r.body == (i % 3 == 0 ? std::string("Hello, World!\n") : "request " + std::to_string(i)));
    }
    // Byte by byte: the same requests, split at every position.
    const std::string two = post("/echo", "split") + get("/hello");
    for (const char c : two) REQUIRE(client.send(std::string_view(&c, 1)));
    CHECK(client.response().body == "split");
    CHECK(client.response().body == "Hello, World!\n");
  }
}

TEST_CASE("http_server: Content-Length and chunked request bodies") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    Client client(server.port());
    const std::string large = pattern_text(300 * 1024, 7);
    CHECK(client.exchange(post("/echo", large)).body == large);

    const std::string chunked =
        "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nHello\r\n"
        "7;name=value\r\n, chunk\r\n"
        "00000000001\r\ny\r\n"
        "0\r\nTrailer-Field: yes\r\n\r\n";
    CHECK(client.exchange(chunked).body == "Hello, chunky");
    // The same message in pieces of 3 bytes.
    for (std::size_t i = 0; i < chunked.size(); i += 3) REQUIRE(client.send(std::string_view(chunked).substr(i, 3)));
    CHECK(client.response().body == "Hello, chunky");

    // A large chunked body, one chunk per 10,000 bytes.
    std::string request = "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::size_t at = 0; at < large.size(); at += 10000) {
      const std::string piece = large.substr(at, 10000);
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      request += size + piece + "\r\n";
    }
    request += "0\r\n\r\n";
    CHECK(client.exchange(request).body == large);

    // Expect: 100-continue gets the interim response before the body is sent.
    REQUIRE(client.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    CHECK(client.response().status == 100);
    REQUIRE(client.send("body"));
    CHECK(client.response().body == "body");
  }
}

TEST_CASE("http_server: static files, content types, 404, 405 and path traversal") {
  DocumentRoot root;
  root.add("index.html", "<h1>index</h1>");
  root.add("style.css", "body {}");
  root.add("docs/readme.txt", "text");
  root.add("image.png", std::string("\x89PNG\r\n\x1a\n", 8));
  root.add("data.bin", "\x01\x02");
  const std::string big = pattern_text(3 * 1024 * 1024 + 17, 3);
  root.add("big.dat", big);
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--root", root.path()}));
    Client client(server.port());
    Response r = client.exchange(get("/"));
    CHECK(r.status == 200);
    CHECK(r.body == "<h1>index</h1>");
    CHECK(r.header("content-type") == "text/html; charset=utf-8");
    r = client.exchange(get("/style.css"));
    CHECK(r.body == "body {}");
    CHECK(r.header("content-type") == "text/css; charset=utf-8");
    r = client.exchange(get("/docs/readme.txt?version=2"));
    CHECK(r.body == "text");
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CHECK(client.exchange(get("/image.png")).header("content-type") == "image/png");
    CHECK(client.exchange(get("/data.bin")).header("content-type") == "application/octet-stream");
    CHECK(client.exchange(get("/docs/%72eadme.txt")).body == "text");
    r = client.exchange(get("/big.dat"));
    CHECK(r.status == 200);
    CHECK(r.body.size() == big.size());
    CHECK(r.body == big);

    CHECK(client.exchange(get("/missing.html")).status == 404);
    CHECK(client.exchange(get("/docs/readme.txt/")).status == 404);
    CHECK(client.exchange(get("/../etc/passwd")).status == 403);
    CHECK(client.exchange(get("/docs/../../etc/passwd")).status == 403);
    CHECK(client.exchange(get("/%2e%2e/etc/passwd")).status == 403);
    CHECK(client.exchange(get("/docs/%2E%2E%2F%2e%2e%2Fetc/passwd")).status == 403);
    CHECK(client.exchange(get("/bad%zzescape")).status == 400);
    CHECK(client.exchange(get("/nul%00byte")).status == 400);
    r = client.exchange("DELETE /style.css HTTP/1.1\r\nHost: test\r\n\r\n");
    CHECK(r.status == 405);
    CHECK(r.header("allow") == "GET, HEAD");
    r = client.exchange("POST /hello HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
    CHECK(r.status == 405);
    CHECK(client.exchange(get("/echo")).header("allow") == "POST");
    CHECK(client.exchange(get("/hello")).body == "Hello, World!\n");  // still the same connection
  }
}

TEST_CASE("http_server: malformed requests are answered 400 and the connection is closed") {
  const char* const malformed[] = {
      "GARBAGE\r\n\r\n",
      "GET /hello HTTP/1.1\nHost: test\n\n",                                  // bare LF
      "GET /hello HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost : test\r\n\r\n",                           // space before the colon
      "GET /hello HTTP/1.1\r\nHost: test\r\n folded\r\n\r\n",
      "GET /hello HTTP/1.1\r\n\r\n",                                          // no Host
      "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -3\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "GET /he\x01llo HTTP/1.1\r\nHost: t\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",                          // a TLS client hello
  };
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    for (const char* request : malformed) {
      CAPTURE(request);
      Client client(server.port());
      const Response r = client.exchange(request);
      CHECK(r.status == 400);
      CHECK(r.header("connection") == "close");
      CHECK(client.closed_by_peer());
    }
    Client client(server.port());
    CHECK(client.exchange("GET /hello HTTP/2.0\r\nHost: t\r\n\r\n").status == 505);
    Client gzip(server.port());
    CHECK(gzip.exchange("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").status == 501);
    Client valid(server.port());
    CHECK(valid.exchange(get("/hello")).status == 200);  // the server is still serving
  }
}

TEST_CASE("http_server: POST /echo with an empty body answers 200 with an empty body") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    Client client(server.port());
    Response r = client.exchange("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == "0");
    CHECK(r.body.empty());
    r = client.exchange("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == "0");
    CHECK(r.body.empty());
    // Pipelined behind each other and behind a non-empty one.
    REQUIRE(client.send(post("/echo", "") + post("/echo", "x") + post("/echo", "")));
    CHECK(client.response().body.empty());
    CHECK(client.response().body == "x");
    CHECK(client.response().body.empty());
    CHECK(client.exchange(get("/hello")).body == "Hello, World!\n");  // the server is still there
    server.signal(SIGTERM);
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("http_server: a FIFO, a socket or a directory without index under --root is refused at once") {
  DocumentRoot root;
  root.add("file.txt", "file");
  root.add_fifo("pipe");
  root.add_directory("fifo_dir");
  root.add_fifo("fifo_dir/index.html");  // a directory whose index is not a regular file
  root.add_directory("empty");
  const int socket_fd = root.add_socket("socket");
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    // One core: had opening the FIFO waited for a writer, the core serving every connection
    // would wait with it.
    ServerProcess server(args(style, {"--root", root.path(), "--cores", "1"}));
    for (const std::string& target : std::vector<std::string>{"/pipe", "/fifo_dir/", "/fifo_dir/index.html", "/empty/", "/socket"}) {
      CAPTURE(target);
      Client client(server.port());
      REQUIRE(client.send(get(target)));
      // A hang guard shorter than the client's: the refusal needs no writer to come.
      REQUIRE(client.readable_within(5000ms));
      const Response r = client.response();
      CHECK(r.status == 404);
      CHECK(client.exchange(get("/file.txt")).body == "file");  // the same connection goes on
      Client next(server.port());
      CHECK(next.exchange(get("/hello")).body == "Hello, World!\n");
    }
    Client head(server.port());
    head.expect_head_only(true);
    CHECK(head.exchange("HEAD /pipe HTTP/1.1\r\nHost: test\r\n\r\n").status == 404);
  }
  ::close(socket_fd);
}

TEST_CASE("http_server: a chunk size may be followed only by whitespace and a chunk extension") {
  const std::string head = "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    // RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" ... ).
    for (const std::string& chunks : std::vector<std::string>{"5 6\r\nhello\r\n0\r\n\r\n", "5 x\r\nhello\r\n0\r\n\r\n",
                                                              "5 \r\nhello\r\n0\r\n\r\n", "5\t6\r\nhello\r\n0\r\n\r\n",
                                                              "5\r\nhello\r\n0 0\r\n\r\n"}) {
      CAPTURE(chunks);
      Client client(server.port());
      const Response r = client.exchange(head + chunks);
      CHECK(r.status == 400);
      CHECK(r.header("connection") == "close");
      CHECK(client.closed_by_peer());
    }
    Client client(server.port());
    CHECK(client.exchange(head + "5 ;a=b\r\nhello\r\n0\r\n\r\n").body == "hello");
    CHECK(client.exchange(head + "5\t \t;a\r\nhello\r\n1;b=\"c\"\r\n!\r\n0 ;end\r\n\r\n").body == "hello!");
  }
}

TEST_CASE("http_server: absolute-form request targets are served by their path") {
  DocumentRoot root;
  root.add("index.html", "<h1>index</h1>");
  root.add("docs/readme.txt", "text");
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    for (const bool with_root : {false, true}) {
      CAPTURE(with_root);
      ServerProcess server(args(style, with_root ? std::vector<std::string>{"--root", root.path()} : std::vector<std::string>{}));
      Client client(server.port());
      // The authority stands for the Host field, which is still required (RFC 9112 §3.2.2).
      Response r = client.exchange(get("http://example.com/hello"));
      CHECK(r.status == 200);
      CHECK(r.body == "Hello, World!\n");
      CHECK(client.exchange(get("HTTP://Example.COM:8080/hello?x=1")).body == "Hello, World!\n");
      CHECK(client.exchange(get("https://[::1]:443/hello")).body == "Hello, World!\n");
      CHECK(client.exchange(post("http://example.com/echo", "echoed")).body == "echoed");
      r = client.exchange("DELETE http://example.com/hello HTTP/1.1\r\nHost: test\r\n\r\n");
      CHECK(r.status == 405);
      if (with_root) {
        // An empty path is "/" (RFC 9110 §4.2.3): the root's index.
        CHECK(client.exchange(get("http://example.com")).body == "<h1>index</h1>");
        CHECK(client.exchange(get("http://example.com?q")).body == "<h1>index</h1>");
        CHECK(client.exchange(get("http://example.com/docs/readme.txt")).body == "text");
        CHECK(client.exchange(get("http://example.com/../docs/readme.txt")).status == 403);
      } else {
        CHECK(client.exchange(get("http://example.com")).status == 404);
      }
      CHECK(client.exchange(get("/hello")).body == "Hello, World!\n");  // the same connection
      Client http10(server.port());  // HTTP/1.0 needs no Host
      CHECK(http10.exchange("GET http://example.com/hello HTTP/1.0\r\n\r\n").body == "Hello, World!\n");

      const std::string refused[] = {
          get("ftp://example.com/hello"),        // not a scheme an origin server serves
          get("mailto:someone@example.com"),
          get("http:/hello"),                    // no authority
          get("http:///hello"),                  // an empty host
          get("http://:80/hello"),
          get("http://user@example.com/hello"),  // userinfo
          get("http://example.com:80x/hello"),
          get("http://exa<mple.com/hello"),
          "GET http://example.com/hello HTTP/1.1\r\n\r\n",  // no Host
      };
      for (const std::string& request : refused) {
        CAPTURE(request);
        Client bad(server.port());
        r = bad.exchange(request);
        CHECK(r.status == 400);
        CHECK(r.header("connection") == "close");
        CHECK(bad.closed_by_peer());
      }
    }
  }
}

TEST_CASE("http_server: limits answer 431 for large heads and 413 for large bodies, exactly at the limit") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--max-head-bytes", "1024", "--max-headers", "8", "--max-body-bytes", "1000"}));
    // A head of exactly 1024 bytes passes; one byte more is refused.
    const std::string start = "GET /hello HTTP/1.1\r\nHost: test\r\nX-Pad: ";
    const std::string at_limit = start + std::string(1024 - start.size() - 4, 'a') + "\r\n\r\n";
    REQUIRE(at_limit.size() == 1024);
    Client fits(server.port());
    CHECK(fits.exchange(at_limit).status == 200);
    Client over(server.port());
    const std::string one_more = start + std::string(1024 - start.size() - 3, 'a') + "\r\n\r\n";
    Response r = over.exchange(one_more);
    CHECK(r.status == 431);
    CHECK(over.closed_by_peer());
    Client endless(server.port());  // a head that never ends
    REQUIRE(endless.send("GET /hello HTTP/1.1\r\nHost: test\r\n"));
    bool answered = false;
    for (int i = 0; i < 200 && !answered; ++i) {
      if (!endless.send("X-Header: 0123456789\r\n")) break;
      answered = endless.readable_now();
    }
    CHECK(endless.response().status == 431);

    std::string many = "GET /hello HTTP/1.1\r\nHost: test\r\n";
    for (int i = 0; i < 7; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    Client eight(server.port());
    CHECK(eight.exchange(many + "\r\n").status == 200);
    Client nine(server.port());
    CHECK(nine.exchange(many + "X-8: v\r\n\r\n").status == 431);

    Client body_fits(server.port());
    CHECK(body_fits.exchange(post("/echo", std::string(1000, 'b'))).status == 200);
    Client body_over(server.port());
    r = body_over.exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n");
    CHECK(r.status == 413);
    CHECK(r.header("connection") == "close");
    CHECK(body_over.closed_by_peer());
    Client chunked_over(server.port());
    r = chunked_over.exchange(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3e8\r\n" + std::string(1000, 'c') + "\r\n1\r\n");
    CHECK(r.status == 413);
    CHECK(chunked_over.closed_by_peer());
  }
}

TEST_CASE("http_server: slow clients are dropped after the header timeout while others are served") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--header-timeout", "600ms", "--cores", "1"}));
    std::vector<std::unique_ptr<Client>> slow;
    for (int i = 0; i < 8; ++i) {
      slow.push_back(std::make_unique<Client>(server.port()));
      REQUIRE(slow.back()->send("GET /hello HTTP/1.1\r\n"));
    }
    int served = 0;
    std::size_t dropped = 0;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(kGuardSeconds);
    while (dropped < slow.size() && std::chrono::steady_clock::now() < give_up) {
      dropped = 0;
      for (auto& client : slow) {
        // One header byte at a time: every byte is progress, none completes the head.
        if (client->peer_gone_now() || !client->send("X")) ++dropped;
      }
      Client normal(server.port());
      if (normal.exchange(get("/hello")).status == 200) ++served;
      std::this_thread::sleep_for(50ms);
    }
    CHECK(dropped == slow.size());
    CHECK(served > 0);
    Client after(server.port());
    CHECK(after.exchange(get("/hello")).body == "Hello, World!\n");
  }
}

TEST_CASE("http_server: an idle kept-alive connection is closed after the idle timeout") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--idle-timeout", "300ms"}));
    Client client(server.port());
    CHECK(client.exchange(get("/hello")).status == 200);
    CHECK(client.closed_by_peer());
  }
}

TEST_CASE("http_server: connections over --max-connections are answered 503") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--max-connections", "2"}));
    auto first = std::make_unique<Client>(server.port());
    Client second(server.port());
    CHECK(first->exchange(get("/hello")).status == 200);  // both are accepted and open
    CHECK(second.exchange(get("/hello")).status == 200);
    Client third(server.port());
    Response r = third.response();
    CHECK(r.status == 503);
    CHECK(third.closed_by_peer());
    first->send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK(first->response().status == 200);
    CHECK(first->closed_by_peer());
    first.reset();  // the server ends its linger when the client closes too
    // A place is free again once the server has closed its side of `first`.
    bool served = false;
    for (int attempt = 0; attempt < 200 && !served; ++attempt) {
      Client next(server.port());
      served = next.exchange(get("/hello")).status == 200;
      if (!served) std::this_thread::sleep_for(20ms);
    }
    CHECK(served);
  }
}

TEST_CASE("http_server: HTTP/1.0 connections close unless they ask for keep-alive") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    Client plain(server.port());
    Response r = plain.exchange("GET /hello HTTP/1.0\r\n\r\n");
    CHECK(r.body == "Hello, World!\n");
    CHECK(r.header("connection") == "close");
    CHECK(plain.closed_by_peer());
    Client kept(server.port());
    r = kept.exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(r.header("connection") == "keep-alive");
    CHECK(kept.exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status == 200);
    Client closing(server.port());
    CHECK(closing.exchange(get("/hello", "Connection: close\r\n")).header("connection") == "close");
    CHECK(closing.closed_by_peer());
  }
}

TEST_CASE("http_server: SIGTERM stops accepting, closes idle connections and finishes requests in flight") {
  DocumentRoot root;
  const std::string big = pattern_text(24 * 1024 * 1024, 11);
  root.add("big.dat", big);
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--root", root.path()}));
    Client idle(server.port());
    CHECK(idle.exchange(get("/hello")).status == 200);
    // A request whose head the server has read (it answered 100 Continue) and whose body is
    // only half there.
    Client partial(server.port());
    REQUIRE(partial.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"));
    REQUIRE(partial.response().status == 100);
    REQUIRE(partial.send("01234"));
    Client download(server.port(), 64 * 1024);
    REQUIRE(download.send(get("/big.dat")));
    download.expect_head_only(true);
    const Response head = download.response();
    REQUIRE(head.status == 200);
    std::string body = download.read_raw(256 * 1024);  // the response is under way

    server.signal(SIGTERM);
    // The idle connection is closed: the server has begun its drain, so the listener is
    // closed and requests already started are still running.
    CHECK(idle.closed_by_peer());
    Client late(server.port());
    CHECK_FALSE(late.connected());

    REQUIRE(partial.send("56789"));
    const Response echoed = partial.response();
    CHECK(echoed.body == "0123456789");
    CHECK(echoed.header("connection") == "close");
    CHECK(partial.closed_by_peer());

    body += download.read_raw(big.size() - body.size());
    CHECK(body.size() == big.size());
    CHECK(body == big);
    CHECK(download.closed_by_peer());
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("http_server: a request still unfinished at --shutdown-timeout is cancelled and the server exits 0") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style, {"--shutdown-timeout", "200ms"}));
    // A request whose body never comes: it is in flight when the drain starts, and stays so.
    Client stuck(server.port());
    REQUIRE(stuck.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"));
    REQUIRE(stuck.response().status == 100);
    REQUIRE(stuck.send("01234"));
    server.signal(SIGTERM);
    CHECK(stuck.closed_by_peer());  // cancelled at the deadline, not left to the guard
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("http_server: bad flags print the usage and exit 2, --help exits 0") {
  const auto run = [](std::vector<std::string> arguments) {
    return aem_test::run_in_child([&] {
      arguments.insert(arguments.begin(), AEM_HTTP_SERVER_PATH);
      std::vector<char*> argv;
      for (std::string& arg : arguments) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      return 127;
    });
  };
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--port", "http"},
                                                               {"--port", "70000"},
                                                               {"--style", "threads"},
                                                               {"--header-timeout", "10"},
                                                               {"--max-headers", "1000"},
                                                               {"--coalesce-us", "2000000"},
                                                               {"--idle-spin-us", "-1"},
                                                               {"--idle-spin-us", "2000000"},
                                                               {"--root", "/nonexistent/directory"},
                                                               {"--unknown"},
                                                               {"--port"}}) {
    CAPTURE(bad[0]);
    const aem_test::ChildResult result = run(bad);
    CHECK(result.exit_code == 2);
    CHECK(result.output.find("usage: http_server") != std::string::npos);
  }
  const aem_test::ChildResult help = run({"--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--max-body-bytes") != std::string::npos);
}

TEST_CASE("http_server: GET /resolve answers a name's addresses, 400 without a name, 404 for an unknown one") {
  for (const std::string& style : kStyles) {
    CAPTURE(style);
    ServerProcess server(args(style));
    Client client(server.port());
    REQUIRE(client.connected());
    Response r = client.exchange(get("/resolve?name=localhost"));
    CHECK(r.status == 200);
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CAPTURE(r.body);
    REQUIRE(!r.body.empty());
    CHECK(r.body.back() == '\n');
    for (std::size_t start = 0; start < r.body.size();) {  // one loopback address per line
      const std::size_t end = r.body.find('\n', start);
      const std::string line = r.body.substr(start, end - start);
      CHECK((line.starts_with("127.") || line == "::1"));
      start = end + 1;
    }
    r = client.exchange(get("/resolve?x=1&name=127.0.0.1"));  // numeric, among other parameters
    CHECK(r.status == 200);
    CHECK(r.body == "127.0.0.1\n");
    r = client.exchange(get("/resolve?name=%3A%3A1"));  // percent-encoded "::1"
    CHECK(r.body == "::1\n");
    CHECK(client.exchange(get("/resolve")).status == 400);
    CHECK(client.exchange(get("/resolve?name=")).status == 400);
    CHECK(client.exchange(get("/resolve?name=%zz")).status == 400);
    r = client.exchange(get("/resolve?name=no-such-host.invalid"));
    CAPTURE(r.body);
    CHECK((r.status == 404 || r.status == 502));  // 502 only where the name server does not answer
    CHECK(r.body.size() > 1);                     // the resolver's message
    r = client.exchange("POST /resolve?name=localhost HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    CHECK(r.status == 405);
    CHECK(client.exchange(get("/hello")).body == "Hello, World!\n");  // the same connection
    server.signal(SIGTERM);
    CHECK(server.wait_exit() == 0);
  }
}

#endif  // AEM_HTTP_SERVER_PATH
