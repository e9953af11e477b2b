// spawn_site.hpp — SpawnSite: where in the source a capsule was spawned, kept for the
// diagnostics (the stall report, Runtime::dump, the gdb commands) at the cost of one pointer.
#pragma once

#include <bit>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace aem {

namespace detail {
// SiteRecord is the static record a std::source_location points to (libstdc++ and libc++ lay
// it out alike): a spawn keeps a pointer to it, never a copy of its strings.
struct SiteRecord {
  const char* file;
  const char* function;
  unsigned line;
  unsigned column;
};
}  // namespace detail

// SpawnSite names the call that spawned a capsule. SpawnOptions::site captures it where the
// options are made, so `aem::spawn(fn)` and `aem::spawn(fn, {.priority = ...})` record the
// caller's line without the caller writing anything; options built apart record where they
// were built. With a compiler whose standard library lacks std::source_location (clang 14 with
// libstdc++ 12) the site is unknown: file() returns "" and line() 0.
class SpawnSite {
 public:
  constexpr SpawnSite() noexcept = default;
#if defined(__cpp_lib_source_location)
  // here returns the site of its caller (or of the expression its default argument ends in).
  static SpawnSite here(std::source_location where = std::source_location::current()) noexcept {
    static_assert(sizeof(std::source_location) == sizeof(const detail::SiteRecord*));
    return SpawnSite(std::bit_cast<const detail::SiteRecord*>(where));
  }
#else
  static constexpr SpawnSite here() noexcept { return SpawnSite(); }
#endif
  // known reports whether the site was recorded.
  constexpr bool known() const noexcept { return record_ != nullptr; }
  constexpr const char* file() const noexcept { return record_ != nullptr ? record_->file : ""; }
  constexpr const char* function() const noexcept { return record_ != nullptr ? record_->function : ""; }
  constexpr unsigned line() const noexcept { return record_ != nullptr ? record_->line : 0; }
  // record is the static record itself (nullptr when unknown), for the runtime to keep.
  constexpr const detail::SiteRecord* record() const noexcept { return record_; }

 private:
  constexpr explicit SpawnSite(const detail::SiteRecord* record) noexcept : record_(record) {}
  const detail::SiteRecord* record_ = nullptr;
};

}  // namespace aem
