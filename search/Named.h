// Named structures of structures.md §3 with their parameters, e.g.
// "btt(rank=8)", "monarch(64)", "dyad(blocks=4, variant=IT)".
#pragma once
#include "Layer.h"

namespace einstruct {

struct NamedSpec {
  std::string family;
  // Parameter values as written, keyed by name (positional ones resolved).
  std::map<std::string, std::string> params;
};

// Names of every family, for help texts and error messages.
const std::vector<std::string> &namedFamilies();

Result<NamedSpec> parseNamed(std::string_view text);

Result<Layer> buildNamed(const NamedSpec &spec, int64_t dIn, int64_t dOut);

} // namespace einstruct
