// Error plumbing: internals return absl::Status / absl::StatusOr (docs/architecture.md §6).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#define VEX_CONCAT_INNER(a, b) a##b
#define VEX_CONCAT(a, b) VEX_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define VEX_RETURN_IF_ERROR(expr)               \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (0)

// `VEX_ASSIGN_OR_RETURN(auto x, f())`: declares x from a StatusOr or returns its error.
#define VEX_ASSIGN_OR_RETURN(lhs, expr) \
  VEX_ASSIGN_OR_RETURN_IMPL(VEX_CONCAT(_statusor_, __LINE__), lhs, expr)
#define VEX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()
