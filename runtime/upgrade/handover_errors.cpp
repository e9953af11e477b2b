// handover_errors.cpp — handover_category(): the messages of handover_errc.
#include <aem/handover.hpp>

#include <string>

namespace aem {
namespace {

class HandoverCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aem.handover"; }
  std::string message(int value) const override {
    switch (static_cast<handover_errc>(value)) {
      case handover_errc::not_allowed:
        return "hand-over refused: the peer runs as a user that is not allowed (HandoverOptions::allowed_uids)";
      case handover_errc::bad_protocol: return "hand-over refused: the peer does not speak the hand-over protocol";
      case handover_errc::version_mismatch: return "hand-over refused: the peer speaks another version of the protocol";
      case handover_errc::busy:
        return "hand-over refused: the running process is handing its listeners to another successor";
      case handover_errc::superseded:
        return "hand-over refused: the running process has handed its listeners over already (ask again: its "
               "successor will answer)";
      case handover_errc::peer_gone: return "hand-over failed: the other process went away before the end";
      case handover_errc::too_many_listeners:
        return "too many listeners for a hand-over (at most 64, names of at most 255 bytes)";
      case handover_errc::duplicate_name: return "a listener of that name is offered already";
      case handover_errc::not_a_file_path:
        return "the hand-over path must be a file path (not empty, not an abstract \"@name\")";
    }
    return "unknown hand-over error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& handover_category() noexcept {
  static const HandoverCategory category;
  return category;
}

}  // namespace aem
