// An independent JSON Schema validator for the core keywords (type, properties, required,
// additionalProperties, items, prefixItems, enum, const, anyOf, minLength, maxLength),
// written from the specification for the tests, sharing nothing with the grammar compiler;
// other keywords ($ref, pattern, format, bounds, ...) are left to python3-jsonschema.
// Returns an empty string when valid, else why not.
#pragma once
#include <string>

#include "core/json.h"

namespace ferrum::testing {

inline size_t code_point_count(const std::string& s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

inline bool has_type(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())));
  return false;
}

inline std::string validate_schema(const json& v, const json& s, const std::string& at = "$") {
  if (s.is_boolean()) return s.get<bool>() ? "" : at + ": schema false";
  if (s.contains("type")) {
    bool ok = false;
    if (s["type"].is_string()) ok = has_type(v, s["type"]);
    else
      for (const auto& t : s["type"]) ok = ok || has_type(v, t);
    if (!ok) return at + ": not of type " + s["type"].dump();
  }
  if (s.contains("const") && v != s["const"]) return at + ": not the const";
  if (s.contains("enum")) {
    bool found = false;
    for (const auto& e : s["enum"]) found = found || e == v;
    if (!found) return at + ": not in enum";
  }
  if (s.contains("anyOf")) {
    bool any = false;
    for (const auto& sub : s["anyOf"]) any = any || validate_schema(v, sub, at).empty();
    if (!any) return at + ": matches no anyOf branch";
  }
  if (v.is_string()) {
    const size_t n = code_point_count(v.get<std::string>());
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return at + ": shorter than minLength";
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return at + ": longer than maxLength";
  }
  if (v.is_array() && s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return at + ": fewer than minItems";
  if (v.is_array() && s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return at + ": more than maxItems";
  size_t first_item = 0;  // items applies after prefixItems (2020-12)
  if (v.is_array() && s.contains("prefixItems")) {
    for (size_t i = 0; i < v.size() && i < s["prefixItems"].size(); ++i)
      if (auto e = validate_schema(v[i], s["prefixItems"][i], at + "[" + std::to_string(i) + "]"); !e.empty()) return e;
    first_item = s["prefixItems"].size();
  }
  if (v.is_array() && s.contains("items"))
    for (size_t i = first_item; i < v.size(); ++i)
      if (auto e = validate_schema(v[i], s["items"], at + "[" + std::to_string(i) + "]"); !e.empty()) return e;
  if (v.is_object()) {
    if (s.contains("required"))
      for (const auto& r : s["required"])
        if (!v.contains(r.get<std::string>())) return at + ": missing required " + r.dump();
    const json props = s.value("properties", json::object());
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (props.contains(it.key())) {
        if (auto e = validate_schema(it.value(), props[it.key()], at + "." + it.key()); !e.empty()) return e;
      } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
        return at + ": additional property " + it.key();
      }
    }
  }
  return "";
}

}  // namespace ferrum::testing
