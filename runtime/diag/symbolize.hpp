// symbolize.hpp — names for return addresses: the function (demangled), the offset into it and,
// where debug information has it, the source file and line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace aem::detail {

// Symbolizer reads the process's modules (the executable and its shared objects, from
// /proc/self/maps) once, when it is made; a module loaded later is not named. Not
// async-signal-safe, and it allocates: never call it from a signal handler or from a core's
// loop. One thread at a time.
class Symbolizer {
 public:
  Symbolizer() noexcept;
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // describe returns "function+0xOFF (file:line)" for `address`, or "0xADDRESS" when nothing is
  // known. `return_address`: the address follows a call (every frame but a stack's innermost),
  // so the call itself is looked up.
  std::string describe(std::uintptr_t address, bool return_address);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// format_frames appends one line per frame, "    #N description\n", to `out`.
void format_frames(Symbolizer& symbols, const std::uintptr_t* frames, std::size_t count, bool first_is_exact,
                   std::string& out);

}  // namespace aem::detail
