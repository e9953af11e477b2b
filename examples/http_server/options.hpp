// options.hpp — the command line of http_server.
#pragma once

#include "server.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace http {

struct Options {
  std::string_view host = "127.0.0.1";
  std::uint16_t port = 8080;
  unsigned cores = 0;  // 0: one per CPU
  unsigned coalesce_us = 0;  // aem::Config::coalesce_window; 0: off
  unsigned idle_spin_us = 20;  // aem::Config::idle_spin
  std::string_view root;  // "": no static route
  std::string_view style = "capsule";
  aem::Duration shutdown_timeout = std::chrono::seconds(30);
  std::string_view tls_cert;  // --tls-cert: "" without TLS
  std::string_view tls_key;
  std::string_view handover;  // --handover: "" without; else the hand-over socket's path
  ServerConfig server;  // root_fd is set by main once --root is opened
};

// parse_options fills `options` from the command line. Returns -1 to go on, or the status to
// exit with: 0 after --help (usage on stdout), 2 for a bad option (message and usage on stderr).
int parse_options(int argc, char** argv, Options& options);

// load_tls makes options.server.tls from --tls-cert and --tls-key (both or neither; ALPN
// http/1.1). Returns -1 to go on, or 2 after a message on a bad pair (tls_options.cpp).
int load_tls(Options& options);

// usage prints the options and the styles.
void usage(std::FILE* out);

// bad_usage prints "http_server: <message>" and the usage on stderr, and returns 2: the exit
// status of a bad command line.
int bad_usage(const std::string& message);

}  // namespace http
