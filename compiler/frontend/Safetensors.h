// safetensors files (Hugging Face's weight format): an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte
// range, then the data. Read strictly: every problem is reported with the
// byte offset where it lies. Floating tensors (F32, F16, BF16, F64) are
// converted to float32, einstruct's exchange type.
// (Hand-written: the format's maintained readers are Rust and Python.)
#pragma once
#include "Npy.h"

#include <map>

namespace einstruct {

struct SafetensorsEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0; // byte range within the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors; // in data order
  std::map<std::string, std::string> metadata;
  size_t dataStart = 0; // file offset of the data section
};

Result<SafetensorsHeader> parseSafetensorsHeader(const std::string &bytes,
                                                 const std::string &source);

// One tensor as float32. An empty `name` is allowed when the file holds
// exactly one tensor.
Result<NpyArray> parseSafetensor(const std::string &bytes,
                                 const std::string &source,
                                 const std::string &name);

// float32 tensors, in the order given, as a safetensors file; `metadata`
// (string to string) goes into its __metadata__ when not empty.
std::string encodeSafetensors(
    const std::vector<std::pair<std::string, NpyArray>> &tensors,
    const std::map<std::string, std::string> &metadata = {});

// An array named on the command line: "x.npy", "w.safetensors:TENSOR" or
// "w.safetensors" holding one tensor. For a safetensors file, `metadata`
// (when given) receives its __metadata__.
Result<NpyArray> readArrayFile(const std::string &spec,
                               std::map<std::string, std::string> *metadata =
                                   nullptr);

} // namespace einstruct
