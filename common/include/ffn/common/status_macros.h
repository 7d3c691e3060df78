// Early-return helpers for absl::Status and absl::StatusOr, as Abseil-based
// projects spell them, so a chain of fallible steps reads top to bottom.
//
// Example:
//   absl::StatusOr<int> ParseCount(const std::string& text);
//   absl::Status CheckLimit(int count);
//
//   absl::StatusOr<int> DoubledCount(const std::string& text) {
//     ASSIGN_OR_RETURN(const int count, ParseCount(text));  // StatusOr<int>
//     RETURN_IF_ERROR(CheckLimit(count));                    // Status
//     return 2 * count;
//   }
//
// Both work in functions returning absl::Status or absl::StatusOr<T>; the
// error is returned unchanged.
#ifndef FFN_COMMON_STATUS_MACROS_H_
#define FFN_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) once; returns it if it is not OK.
#define RETURN_IF_ERROR(expr)                                              \
  do {                                                                     \
    if (::absl::Status ffn_status_macro_status = (expr);                   \
        !ffn_status_macro_status.ok()) {                                   \
      return ffn_status_macro_status;                                      \
    }                                                                      \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>) once; returns its status if it is
// not OK, otherwise moves its value into `lhs` (a declaration such as
// `auto x` or an existing variable). Declares a hidden variable, so it is a
// statement of its own, not the body of an unbraced if.
#define ASSIGN_OR_RETURN(lhs, expr) \
  FFN_ASSIGN_OR_RETURN_IMPL(FFN_STATUS_MACRO_CONCAT(ffn_statusor_, __LINE__), lhs, expr)

#define FFN_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#define FFN_STATUS_MACRO_CONCAT_INNER(a, b) a##b
#define FFN_STATUS_MACRO_CONCAT(a, b) FFN_STATUS_MACRO_CONCAT_INNER(a, b)

#endif  // FFN_COMMON_STATUS_MACROS_H_
