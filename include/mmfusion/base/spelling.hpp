#pragma once
// What a user probably meant: the nearest of the known words to a mistyped one, for the
// "did you mean ...?" of unknown config keys and unknown subcommands.
#include <cstddef>
#include <string>
#include <vector>

namespace mmfusion {

// Levenshtein distance (insertions, deletions and substitutions of one character).
size_t edit_distance(const std::string& a, const std::string& b);

// The known word nearest to `word`, when it is within max(2, |word| / 3) edits (the first
// of equals, in the order given); "" when none is that near.
std::string nearest_word(const std::string& word, const std::vector<std::string>& known);

}  // namespace mmfusion
