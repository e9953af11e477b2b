// The README's "Logging" snippet: the runtime's diagnostics sent to syslog.
#include <aem/capsule.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <chrono>
#include <stdexcept>

using namespace std::chrono_literals;

// readme-begin
#include <aem/config.hpp>
#include <aem/log.hpp>

#include <syslog.h>

// The runtime's own messages (a handler that threw, a listener out of descriptors, a stall)
// go to syslog instead of stderr. The sink runs on the runtime's threads, several at once:
// syslog() is thread-safe.
aem::Config service_config() {
  aem::Config config;
  config.log = [](const aem::LogRecord& record) {
    const int priority = record.level == aem::LogLevel::error     ? LOG_ERR
                         : record.level == aem::LogLevel::warning ? LOG_WARNING
                         : record.level == aem::LogLevel::info    ? LOG_INFO
                                                                  : LOG_DEBUG;
    if (record.core == aem::kNoCore) {
      syslog(priority, "aem: %.*s", static_cast<int>(record.message.size()), record.message.data());
    } else {
      syslog(priority, "aem core %u: %.*s", record.core, static_cast<int>(record.message.size()),
             record.message.data());
    }
  };
  return config;
}
// readme-end

int main() {
  aem::Config config = service_config();
  config.cores = 1;
  aem::Runtime rt(config);
  return rt.run([] {
    // A handler that throws: the runtime reports it through the sink and goes on.
    auto id = aem::after(1ms, [] { throw std::runtime_error("an example failure"); });
    aem::this_capsule::sleep_for(10ms);
    return id ? 0 : 1;
  });
}
