// Reading questions out of text, shared by the builtin HOST experts: where the question ends
// (the marker the trigger follows), words, hedges, and numbers written with their scale.
#pragma once

#include <gmpxx.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vex {

std::string lower(std::string_view s);

// Words that make the quantity after them inexact ("approximately", "about", "~", "≈", ...).
bool is_hedge(std::string_view word);

// The last line of `text` before the question's end marker, trimmed: the text must end (up to
// whitespace) with "=", ":" or one of the words "is", "are", "was", "equals", "comes to", "of"
// ("a debt yield of").
// Nullopt when it does not, or when the "=" belongs to "==", "<=", ">=" or "!=".
std::optional<std::string_view> question_line(std::string_view text);

// Whitespace-separated words with surrounding punctuation (",;:()?!\"'" and a trailing '.')
// stripped.
std::vector<std::string_view> words(std::string_view s);

}  // namespace vex
