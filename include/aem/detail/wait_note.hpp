// detail/wait_note.hpp — what a suspended capsule waits for, as the diagnostics show it
// (Runtime::dump, the gdb commands). Each suspension point notes it just before it suspends:
// a kind and an object, two stores on the capsule.
#pragma once

#include <aem/export.hpp>

#include <cstdint>

namespace aem::detail {

// WaitKind says what a suspended capsule waits for; `object` and `arg` of note_wait say which.
enum class WaitKind : std::uint8_t {
  none,             // not noted (a wait of the runtime's own)
  io,               // object: nullptr, arg: (fd << 8) | the backend's opcode
  sleep,            // this_capsule::sleep_until; arg: the deadline, ns on the steady clock
  mutex,            // object: the aem::Mutex (its holder is read from it)
  condvar,          // object: the aem::CondVar
  semaphore,        // object: the aem::Semaphore
  wait_group,       // object: the aem::WaitGroup
  channel_send,     // object: the aem::Channel
  channel_receive,  // object: the aem::Channel
  join,             // object: the joined task; arg: the core it runs on
  cross_core,       // a call submitted to another core; arg: that core
  blocking,         // object: the aem::blocking call record (its call site)
};

// note_wait records on the calling capsule what it is about to wait for; the runtime clears it
// when the wait ends. A plain thread or an inline handler: nothing happens. Any thread.
AEM_EXPORT void note_wait(WaitKind kind, const void* object, std::intptr_t arg = 0) noexcept;

}  // namespace aem::detail
