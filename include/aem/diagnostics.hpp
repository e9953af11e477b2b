// diagnostics.hpp — what the runtime tells about itself when something is wrong: the capsule
// dump's sink (Runtime::dump). The stall detector is configured in Config::stall_threshold and
// reports through Config::log; the formats are described in docs/diagnostics.md.
#pragma once

#include <functional>
#include <string_view>

namespace aem {

// DumpSink receives a capsule dump (Runtime::dump) in pieces, in order: a header, then one
// piece per core, each ending in a newline. A piece is valid only during the call.
using DumpSink = std::function<void(std::string_view text)>;

}  // namespace aem
