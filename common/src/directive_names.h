// Directive names in the messages operators read.
//
// The core names settings as nginx spells them (certgate_max_stale); httpd
// operators write CertGateMaxStale. A server process hosts one kind of server,
// so its adapter sets the style once, and details and hints are rendered in it.
#pragma once

#include <string>
#include <string_view>

namespace certgate {

enum class DirectiveStyle { kNginx, kHttpd };

void SetDirectiveStyle(DirectiveStyle style);
DirectiveStyle CurrentDirectiveStyle();

// `text` with every nginx directive name ("certgate_max_stale", and "certgate"
// before require/optional/off) in `style`: "CertGateMaxStale", "CertGate".
std::string SpellDirectives(std::string_view text, DirectiveStyle style);

}  // namespace certgate
