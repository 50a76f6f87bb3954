// Text for man pages (groff's man macros): the generated parts of certgate(1)
// and certgate(5) are written from the core's tables through these.
#pragma once

#include <string>
#include <string_view>

namespace certgate::cli {

// Escapes running text for roff: a backslash prints as itself, '-' as a
// hyphen-minus (what a reader types), and a line never starts with a control
// character ('.' or '\'').
std::string RoffText(std::string_view text);

}  // namespace certgate::cli
