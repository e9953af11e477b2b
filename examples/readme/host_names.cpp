// The README's "Host names" snippet in a program (it resolves names: not run by the tests).
#include <aem/net.hpp>
#include <aem/net/resolve.hpp>
#include <aem/runtime.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

int main() {
  aem::Runtime rt;
  // readme-begin
  rt.run([] {
    auto stream = aem::TcpStream::connect("localhost", 8080, 5s);  // resolve + Happy Eyeballs
    if (!stream) {
      if (stream.error() == aem::resolve_errc::host_not_found) std::puts("no such host");
      return;
    }
    auto addresses = aem::resolve("example.com", "https", {.deadline = 2s});
    if (addresses) for (const auto& a : *addresses) std::puts(a.to_string().c_str());
  });
  // readme-end
  return 0;
}
