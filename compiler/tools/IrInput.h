// The files of einstruct-opt and einstruct-translate: the input, read once
// (what would crash MLIR 22 is refused first, with its place: nesting deep
// enough to overflow the parser's stack, and ops its verifiers crash on),
// and the output, kept only when the tool succeeds.
#pragma once
#include "compiler/frontend/TextNesting.h"
#include "compiler/ir/ParseModule.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/ToolUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

namespace einstruct {

// Whether some split of `file` (`splitMarker`, as the tool splits it; none
// when empty) holds an op MLIR 22's verifiers crash on, after printing its
// place to stderr. Each split is parsed unverified; one that does not parse
// is left to the tool, which reports why.
inline bool verifierWouldCrash(const llvm::MemoryBuffer &file,
                               const mlir::DialectRegistry &registry,
                               llvm::StringRef splitMarker) {
  bool crash = false;
  auto chunk = [&](std::unique_ptr<llvm::MemoryBuffer> text,
                   llvm::raw_ostream &) {
    mlir::MLIRContext ctx(registry);
    llvm::SourceMgr sources;
    sources.AddNewSourceBuffer(std::move(text), llvm::SMLoc());
    mlir::OwningOpRef<mlir::ModuleOp> module;
    {
      mlir::ScopedDiagnosticHandler quiet(
          &ctx, [](mlir::Diagnostic &) { return mlir::success(); });
      module = mlir::parseSourceFile<mlir::ModuleOp>(
          sources, mlir::ParserConfig(&ctx, /*verifyAfterParse=*/false));
    }
    mlir::SourceMgrDiagnosticHandler report(sources, &ctx);
    crash |= module && mlir::failed(refuseVerifierCrashes(*module));
    return mlir::success();
  };
  (void)mlir::splitAndProcessBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(file.getBuffer(),
                                           file.getBufferIdentifier()),
      mlir::NoSourceChunkBufferHandler(chunk), llvm::nulls(), splitMarker);
  return crash;
}

// The file's text, or null after printing why to stderr.
inline std::unique_ptr<llvm::MemoryBuffer>
readIrInput(const std::string &path, const mlir::DialectRegistry &registry,
            llvm::StringRef splitMarker = "") {
  std::string error;
  auto file = mlir::openInputFile(path, &error);
  if (!file) {
    llvm::errs() << error << "\n";
    return nullptr;
  }
  if (auto at = tooDeeplyNested(
          std::string_view(file->getBufferStart(), file->getBufferSize()))) {
    llvm::errs() << path << ":" << at->line << ":" << at->column
                 << ": error: nested deeper than " << kMaxTextNesting
                 << " levels\n";
    return nullptr;
  }
  if (verifierWouldCrash(*file, registry, splitMarker))
    return nullptr;
  return file;
}

// The output file (removed unless keep() is called), or null after printing
// why to stderr.
inline std::unique_ptr<llvm::ToolOutputFile>
openToolOutput(const std::string &path) {
  std::string error;
  auto out = mlir::openOutputFile(path, &error);
  if (!out)
    llvm::errs() << error << "\n";
  return out;
}

} // namespace einstruct
