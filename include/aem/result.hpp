// result.hpp — Result<T>: a value or a std::error_code.
//
// aem targets C++20 (clang 14 cannot use libstdc++'s std::expected), so Result<T> offers the
// subset of std::expected that the API needs, with the same names.
//
// Example:
//   aem::Result<aem::Capsule<int>> c = aem::spawn([] { return 42; });
//   if (!c) { std::cerr << c.error().message() << '\n'; return; }
//   int v = c->join();
#pragma once

#include <aem/error.hpp>

#include <cassert>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem {

// Result<T> holds either a T or a non-zero std::error_code.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(T value) : has_value_(true) { new (&value_) T(std::move(value)); }  // NOLINT: implicit by design
  Result(std::error_code error) : has_value_(false) {  // NOLINT: implicit by design
    assert(error && "Result: an error must be non-zero");
    new (&error_) std::error_code(error);
  }
  Result(errc error) : Result(make_error_code(error)) {}  // NOLINT: implicit by design

  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) : has_value_(other.has_value_) {
    if (has_value_) new (&value_) T(std::move(other.value_));
    else new (&error_) std::error_code(other.error_);
  }
  Result(const Result& other) : has_value_(other.has_value_) {
    if (has_value_) new (&value_) T(other.value_);
    else new (&error_) std::error_code(other.error_);
  }
  Result& operator=(Result other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    destroy();
    has_value_ = other.has_value_;
    if (has_value_) new (&value_) T(std::move(other.value_));
    else new (&error_) std::error_code(other.error_);
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  // value returns the held value, or throws std::system_error with the held error.
  T& value() & { check(); return value_; }
  const T& value() const& { check(); return value_; }
  T&& value() && { check(); return std::move(value_); }

  // error returns the held error; an empty std::error_code when a value is held.
  std::error_code error() const noexcept { return has_value_ ? std::error_code{} : error_; }

  T& operator*() & noexcept { assert(has_value_); return value_; }
  const T& operator*() const& noexcept { assert(has_value_); return value_; }
  T&& operator*() && noexcept { assert(has_value_); return std::move(value_); }
  T* operator->() noexcept { assert(has_value_); return &value_; }
  const T* operator->() const noexcept { assert(has_value_); return &value_; }

  template <typename U>
  T value_or(U&& fallback) const& { return has_value_ ? value_ : static_cast<T>(std::forward<U>(fallback)); }

 private:
  void check() const {
    if (!has_value_) throw std::system_error(error_);
  }
  void destroy() noexcept {
    if (has_value_) value_.~T();
    else error_.~error_code();
  }

  bool has_value_;
  union {
    T value_;
    std::error_code error_;
  };
};

// Result<void> holds success or a non-zero std::error_code.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(std::error_code error) noexcept { error_ = error; }  // NOLINT: implicit by design
  Result(errc error) noexcept { error_ = make_error_code(error); }  // NOLINT: implicit by design

  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return !error_; }
  // value throws std::system_error if an error is held.
  void value() const {
    if (error_) throw std::system_error(error_.get());
  }
  std::error_code error() const noexcept { return error_.get(); }

 private:
  detail::StoredError error_;  // success must not cost a std::error_code construction
};

}  // namespace aem
