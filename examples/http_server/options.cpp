// options.cpp — parse_options and usage: every option takes one value; sizes are plain byte
// counts, durations are numbers with a unit (ms or s).
#include "options.hpp"

#include "styles.hpp"

#include <charconv>
#include <string>

namespace http {
namespace {

template <typename T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// parse_duration reads "250ms" or "10s"; a duration must be positive.
bool parse_duration(std::string_view text, aem::Duration& out) {
  std::uint64_t value = 0;
  if (text.ends_with("ms")) {
    if (!parse_number(text.substr(0, text.size() - 2), value)) return false;
    out = std::chrono::milliseconds(value);
  } else if (text.ends_with("s")) {
    if (!parse_number(text.substr(0, text.size() - 1), value) || value > 1'000'000'000) return false;
    out = std::chrono::seconds(value);
  } else {
    return false;
  }
  return value > 0;
}

// Option is one flag: its name, its value's placeholder, its help and how to store its value.
struct Option {
  std::string_view name;
  std::string_view value;
  std::string_view help;
  bool (*apply)(std::string_view value, Options& options);
};

const Option kOptions[] = {
    {"--host", "ADDR", "numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)",
     [](std::string_view v, Options& o) {
       o.host = v;
       return !v.empty();
     }},
    {"--port", "N", "TCP port (default 8080; 0 picks a free one)",
     [](std::string_view v, Options& o) { return parse_number(v, o.port); }},
    {"--cores", "N", "scheduler cores (default: one per CPU)",
     [](std::string_view v, Options& o) { return parse_number(v, o.cores) && o.cores <= 1024; }},
    {"--coalesce-us", "N", "after a busy stretch, let completions gather N us (default 0: off)",
     [](std::string_view v, Options& o) { return parse_number(v, o.coalesce_us) && o.coalesce_us <= 1'000'000; }},
    {"--idle-spin-us", "N", "an idle core polls at most N us before it sleeps (default 20; 0: at once)",
     [](std::string_view v, Options& o) { return parse_number(v, o.idle_spin_us) && o.idle_spin_us <= 1'000'000; }},
    {"--root", "DIR", "serve the files under DIR (GET, HEAD); without it only /hello and /echo",
     [](std::string_view v, Options& o) {
       o.root = v;
       return !v.empty();
     }},
    {"--style", "NAME", "capsule | registration: how connections are served (default capsule)",
     [](std::string_view v, Options& o) {
       o.style = v;
       return find_style(v) != nullptr;
     }},
    {"--max-connections", "N", "connections open at once; more are answered 503 (default 10000)",
     [](std::string_view v, Options& o) { return parse_number(v, o.server.max_connections) && o.server.max_connections > 0; }},
    {"--max-head-bytes", "N", "request line + header fields, in bytes; more: 431 (default 8192)",
     [](std::string_view v, Options& o) {
       return parse_number(v, o.server.limits.max_head_bytes) && o.server.limits.max_head_bytes >= 64 &&
              o.server.limits.max_head_bytes <= (1u << 20);
     }},
    {"--max-headers", "N", "header fields per request, at most 256; more: 431 (default 64)",
     [](std::string_view v, Options& o) {
       return parse_number(v, o.server.limits.max_headers) && o.server.limits.max_headers <= kHeaderCapacity;
     }},
    {"--max-body-bytes", "N", "request body, in bytes; more: 413 (default 1048576)",
     [](std::string_view v, Options& o) { return parse_number(v, o.server.limits.max_body_bytes); }},
    {"--header-timeout", "T", "from a request's first byte to the end of its head (default 10s)",
     [](std::string_view v, Options& o) { return parse_duration(v, o.server.header_timeout); }},
    {"--request-timeout", "T", "from a request's first byte to the end of its body (default 30s)",
     [](std::string_view v, Options& o) { return parse_duration(v, o.server.request_timeout); }},
    {"--idle-timeout", "T", "wait for the next request on a kept-alive connection (default 60s)",
     [](std::string_view v, Options& o) { return parse_duration(v, o.server.idle_timeout); }},
    {"--send-timeout", "T", "one blocked write to a client that does not read (default 30s)",
     [](std::string_view v, Options& o) { return parse_duration(v, o.server.send_timeout); }},
    {"--tls-cert", "FILE", "HTTPS: the certificate chain, PEM (with --tls-key)",
     [](std::string_view v, Options& o) {
       o.tls_cert = v;
       return !v.empty();
     }},
    {"--tls-key", "FILE", "HTTPS: the private key of --tls-cert, PEM",
     [](std::string_view v, Options& o) {
       o.tls_key = v;
       return !v.empty();
     }},
    {"--handover", "PATH", "take the listener from the server offering it on PATH, and offer it there next",
     [](std::string_view v, Options& o) {
       o.handover = v;
       return !v.empty() && v.front() != '@';
     }},
    {"--shutdown-timeout", "T", "on SIGTERM/SIGINT, wait this long for requests in flight (default 30s)",
     [](std::string_view v, Options& o) { return parse_duration(v, o.shutdown_timeout); }},
};

const Option* find_option(std::string_view name) {
  for (const Option& option : kOptions) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

}  // namespace

void usage(std::FILE* out) {
  std::fprintf(out, "usage: http_server [OPTION VALUE]... [--help]\n");
  for (const Option& option : kOptions) {
    const std::string flag = std::string(option.name) + " " + std::string(option.value);
    std::fprintf(out, "  %-22s %.*s\n", flag.c_str(), static_cast<int>(option.help.size()), option.help.data());
  }
  std::fprintf(out, "Durations take a unit: 500ms, 10s. Styles:\n");
  for (const Style& style : kStyles) {
    std::fprintf(out, "  %-13.*s %.*s\n", static_cast<int>(style.name.size()), style.name.data(),
                 static_cast<int>(style.description.size()), style.description.data());
  }
  std::fprintf(out,
               "Prints \"listening on ADDRESS:PORT\" first; stops on SIGINT or SIGTERM once the\n"
               "requests in flight are answered.\n");
}

int bad_usage(const std::string& message) {
  std::fprintf(stderr, "http_server: %s\n\n", message.c_str());
  usage(stderr);
  return 2;
}

int parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    const Option* option = find_option(arg);
    if (option == nullptr) return bad_usage("unknown option " + std::string(arg));
    if (i + 1 >= argc) return bad_usage(std::string(arg) + " needs a value");
    const std::string_view value = argv[++i];
    if (!option->apply(value, options)) return bad_usage("bad value for " + std::string(arg) + ": '" + std::string(value) + "'");
  }
  return load_tls(options);
}

}  // namespace http
