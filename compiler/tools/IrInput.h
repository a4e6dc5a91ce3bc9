// The files of einstruct-opt and einstruct-translate: the input, read once
// (nesting deep enough to overflow MLIR's parser stack is refused first,
// with its place), and the output, kept only when the tool succeeds.
#pragma once
#include "compiler/frontend/TextNesting.h"

#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

namespace einstruct {

// The file's text, or null after printing why to stderr.
inline std::unique_ptr<llvm::MemoryBuffer>
readIrInput(const std::string &path) {
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
