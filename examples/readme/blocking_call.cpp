// The README's "Calling blocking code" snippet, around a stand-in database client.
#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

struct Row {
  std::string name;
};

// Database stands for a client library whose calls block their thread.
struct Database {
  Row query_one(std::string_view sql) const { return Row{std::string(sql)}; }
};

void use(const Row& row) { std::printf("%s\n", row.name.c_str()); }

}  // namespace

// readme-begin
#include <aem/blocking.hpp>

// In a capsule: the query runs on the runtime's pool of threads; only this capsule waits.
aem::Result<void> show(const Database& db, std::string_view sql) {
  aem::Result<Row> row = aem::blocking([&] { return db.query_one(sql); }, {.deadline = 500ms});
  if (!row) return row.error();  // errc::timed_out, errc::blocking_queue_full, errc::shutting_down
  use(*row);                     // an exception thrown by the query is rethrown here instead
  return {};
}
// readme-end

int main() {
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([] { return show(Database{}, "SELECT 1") ? 0 : 1; });
}
