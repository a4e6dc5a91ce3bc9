// Named structures of structures.md §3 with their parameters, e.g.
// "btt(rank=8)", "monarch(64)", "dyad(blocks=4, variant=IT)".
#pragma once
#include "Checked.h"
#include "Layer.h"

namespace einstruct {

struct NamedSpec {
  std::string family;
  // Parameter values as written, keyed by name (positional ones resolved).
  std::map<std::string, std::string> params;
};

// A call form: a name and its parameters in positional order.
struct CallForm {
  std::string name;
  std::vector<std::string> params;
};

// The name a call starts with, trimmed and lowercased: "search" for
// " Search(0.5)".
std::string callName(std::string_view text);

// "name(positional, key=value, ...)" against `forms` (names lowercased,
// `aliases` mapped first): the parameters by name, as written. Errors name
// `what` ("structure", "mixer") and the column.
Result<NamedSpec> parseCall(std::string_view text,
                            const std::vector<CallForm> &forms,
                            const std::map<std::string, std::string> &aliases,
                            const char *what);

// The names of `forms`, in order.
std::vector<std::string> formNames(const std::vector<CallForm> &forms);

// A call's integer parameter `key` in [1, max]: absent (none), or an error
// naming the family, the key and the value; requiredInt when it must be given.
Result<std::optional<int64_t>> intParam(const NamedSpec &spec,
                                        const std::string &key,
                                        int64_t max = kMaxDim);
Result<int64_t> requiredInt(const NamedSpec &spec, const std::string &key,
                            int64_t max = kMaxDim);

// Names of every family, for help texts and error messages.
const std::vector<std::string> &namedFamilies();

Result<NamedSpec> parseNamed(std::string_view text);

Result<Layer> buildNamed(const NamedSpec &spec, int64_t dIn, int64_t dOut);

} // namespace einstruct
