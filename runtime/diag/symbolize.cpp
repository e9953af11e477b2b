// symbolize.cpp — Symbolizer on elfutils' libdw (dwfl): the symbol tables of every module
// (static functions too, which dladdr misses) and their line tables.
#include "runtime/diag/symbolize.hpp"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace aem::detail {

struct Symbolizer::State {
  Dwfl* dwfl = nullptr;
  Dwfl_Callbacks callbacks{};
  char* debuginfo_path = nullptr;
};

Symbolizer::Symbolizer() noexcept {
  auto state = std::unique_ptr<State>(new (std::nothrow) State);
  if (!state) return;
  state->callbacks.find_elf = dwfl_linux_proc_find_elf;
  state->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
  state->callbacks.debuginfo_path = &state->debuginfo_path;
  state->dwfl = dwfl_begin(&state->callbacks);
  if (state->dwfl == nullptr) return;
  dwfl_report_begin(state->dwfl);
  if (dwfl_linux_proc_report(state->dwfl, ::getpid()) != 0 || dwfl_report_end(state->dwfl, nullptr, nullptr) != 0) {
    dwfl_end(state->dwfl);
    return;
  }
  state_ = std::move(state);
}

Symbolizer::~Symbolizer() {
  if (state_ && state_->dwfl != nullptr) dwfl_end(state_->dwfl);
}

namespace {

std::string demangled(const char* name) {
  int status = 0;
  char* plain = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || plain == nullptr) return name;
  std::string out(plain);
  std::free(plain);
  return out;
}

std::string hex(std::uintptr_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%jx", static_cast<std::uintmax_t>(value));
  return text;
}

}  // namespace

std::string Symbolizer::describe(std::uintptr_t address, bool return_address) {
  if (!state_) return hex(address);
  // A return address points after the call, possibly into the next function or line.
  const Dwarf_Addr lookup = return_address && address > 0 ? address - 1 : address;
  Dwfl_Module* module = dwfl_addrmodule(state_->dwfl, lookup);
  if (module == nullptr) return hex(address);
  GElf_Off offset = 0;
  GElf_Sym symbol;
  const char* name = dwfl_module_addrinfo(module, lookup, &offset, &symbol, nullptr, nullptr, nullptr);
  std::string out;
  if (name != nullptr) {
    out = demangled(name);
    out += '+';
    out += hex(offset + (lookup != address ? 1 : 0));
  } else {
    const char* module_name = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    out = hex(address);
    if (module_name != nullptr) {
      out += " in ";
      out += module_name;
    }
  }
  if (Dwfl_Line* line = dwfl_module_getsrc(module, lookup); line != nullptr) {
    int number = 0;
    if (const char* file = dwfl_lineinfo(line, nullptr, &number, nullptr, nullptr, nullptr); file != nullptr) {
      const char* base = std::strrchr(file, '/');
      out += " (";
      out += base != nullptr ? base + 1 : file;
      out += ':';
      out += std::to_string(number);
      out += ')';
    }
  }
  return out;
}

void format_frames(Symbolizer& symbols, const std::uintptr_t* frames, std::size_t count, bool first_is_exact,
                   std::string& out) {
  for (std::size_t i = 0; i < count; ++i) {
    out += "    #";
    out += std::to_string(i);
    out += ' ';
    out += symbols.describe(frames[i], !(i == 0 && first_is_exact));
    out += '\n';
  }
}

}  // namespace aem::detail
