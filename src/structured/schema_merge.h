// JSON Schema composition resolved before compiling: local $ref pointers and allOf merging
// (the rules are in json_schema.h).
#pragma once
#include <string>

#include "core/json.h"

namespace ferrum::structured {

[[noreturn]] void schema_error(const std::string& path, const std::string& what);

// Keywords that only annotate: ignored by the compiler and by merging.
bool is_annotation(const std::string& keyword);

// The schema a local reference ("#", "#/$defs/x", any "#/json/pointer") points to in root.
const ordered_json& resolve_ref(const ordered_json& root, const std::string& ref, const std::string& path);

// One schema equivalent to s's allOf branches together with s's own keywords, for the
// merges json_schema.h lists; throws InvalidRequest for the ones it cannot do.
ordered_json merge_all_of(const ordered_json& root, const ordered_json& s, const std::string& path);

}  // namespace ferrum::structured
