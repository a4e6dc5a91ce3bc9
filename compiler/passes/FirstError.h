// The first error diagnostic a context emits while this is in scope, and
// where, for callers that report one line ("@layer: ...", "file:line:col:
// ..."); other diagnostics are swallowed.
#pragma once
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"

#include <optional>
#include <string>

namespace einstruct {

struct FirstError {
  std::string text;
  std::optional<mlir::Location> where;
  mlir::ScopedDiagnosticHandler handler;

  explicit FirstError(mlir::MLIRContext *ctx)
      : handler(ctx, [this](mlir::Diagnostic &d) {
          if (d.getSeverity() == mlir::DiagnosticSeverity::Error && !where) {
            text = d.str();
            where = d.getLocation();
          }
          return mlir::success();
        }) {}
  FirstError(const FirstError &) = delete;
  FirstError &operator=(const FirstError &) = delete;
};

} // namespace einstruct
