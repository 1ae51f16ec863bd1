#include "structured/schema_merge.h"

#include <set>

#include "core/error.h"

namespace ferrum::structured {

void schema_error(const std::string& path, const std::string& what) {
  throw InvalidRequest("json_schema" + (path.empty() ? std::string() : " at '" + path + "'") + ": " + what);
}

bool is_annotation(const std::string& k) {
  static const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema", "$id",
                                                     "$comment", "readOnly", "writeOnly", "deprecated", "$defs", "definitions"};
  return kAnnotations.count(k) > 0;
}

const ordered_json& resolve_ref(const ordered_json& root, const std::string& ref, const std::string& path) {
  if (ref.empty() || ref[0] != '#') schema_error(path, "'$ref' '" + ref + "' is not supported: only references inside the schema (#/...) are");
  if (ref == "#") return root;
  try {
    const ordered_json::json_pointer ptr(ref.substr(1));
    if (!root.contains(ptr)) schema_error(path, "'$ref' '" + ref + "' points to nothing");
    return root.at(ptr);
  } catch (const ordered_json::exception&) {
    schema_error(path, "'$ref' '" + ref + "' is not a valid JSON pointer");
  }
}

namespace {

constexpr int kMaxMergeDepth = 32;

std::vector<std::string> types_of(const ordered_json& t) {
  std::vector<std::string> out;
  if (t.is_string()) out.push_back(t.get<std::string>());
  else if (t.is_array())
    for (const auto& x : t)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

class Merger {
 public:
  Merger(const ordered_json& root, std::string path) : root_(root), path_(std::move(path)) {}

  // Adds one branch: $ref and nested allOf are followed first.
  void add(const ordered_json& s, int depth) {
    if (depth > kMaxMergeDepth) schema_error(path_, "'allOf'/'$ref' nest more than " + std::to_string(kMaxMergeDepth) + " deep");
    if (s.is_boolean()) {
      if (!s.get<bool>()) schema_error(path_, "an 'allOf' branch is 'false': nothing is valid");
      return;
    }
    if (!s.is_object()) schema_error(path_, "an 'allOf' branch must be a schema");
    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) schema_error(path_, "'$ref' must be a string");
      add(resolve_ref(root_, s["$ref"].get<std::string>(), path_), depth + 1);
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].empty()) schema_error(path_, "'allOf' must be a non-empty array");
      for (const auto& b : s["allOf"]) add(b, depth + 1);
    }
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (k == "$ref" || k == "allOf" || is_annotation(k)) continue;
      if (k == "type") merge_type(it.value());
      else if (k == "properties") merge_properties(it.value(), s);
      else if (k == "required") merge_required(it.value());
      else if (k == "additionalProperties") merge_additional(it.value(), s);
      else if (!out_.contains(k)) out_[k] = it.value();
      else if (out_[k] != it.value())
        schema_error(path_, "'allOf' branches give '" + k + "' different values; merging them is not supported");
    }
  }

  ordered_json finish() {
    if (closed_) {
      out_["additionalProperties"] = false;
      if (out_.contains("properties")) {
        ordered_json kept = ordered_json::object();
        for (auto it = out_["properties"].begin(); it != out_["properties"].end(); ++it)
          if (allowed_.count(it.key())) kept[it.key()] = it.value();
        out_["properties"] = kept;
      }
      if (out_.contains("required"))
        for (const auto& r : out_["required"])
          if (!allowed_.count(r.get<std::string>()))
            schema_error(path_, "'allOf' requires '" + r.get<std::string>() + "', which a branch with additionalProperties false forbids");
    }
    return out_;
  }

 private:
  void merge_type(const ordered_json& t) {
    auto now = types_of(t);
    if (now.empty()) schema_error(path_, "'type' must be a string or a non-empty array of strings");
    if (out_.contains("type")) {
      std::vector<std::string> both;
      const auto before = types_of(out_["type"]);
      for (const auto& x : now) {
        const bool in = std::find(before.begin(), before.end(), x) != before.end() ||
                        (x == "integer" && std::find(before.begin(), before.end(), "number") != before.end());
        if (in) both.push_back(x);
        else if (x == "number" && std::find(before.begin(), before.end(), "integer") != before.end()) both.push_back("integer");
      }
      if (both.empty()) schema_error(path_, "'allOf' branches have no 'type' in common");
      now = both;
    }
    out_["type"] = now.size() == 1 ? ordered_json(now[0]) : ordered_json(now);
  }

  void merge_properties(const ordered_json& props, const ordered_json& branch) {
    if (!props.is_object()) schema_error(path_, "'properties' must be an object");
    auto& dst = out_["properties"];
    if (dst.is_null()) dst = ordered_json::object();
    for (auto it = props.begin(); it != props.end(); ++it) {
      if (!dst.contains(it.key())) dst[it.key()] = it.value();
      else if (dst[it.key()] != it.value()) dst[it.key()] = ordered_json{{"allOf", {dst[it.key()], it.value()}}};
    }
    (void)branch;
  }

  void merge_required(const ordered_json& req) {
    if (!req.is_array()) schema_error(path_, "'required' must be an array of strings");
    auto& dst = out_["required"];
    if (dst.is_null()) dst = ordered_json::array();
    for (const auto& r : req)
      if (std::find(dst.begin(), dst.end(), r) == dst.end()) dst.push_back(r);
  }

  void merge_additional(const ordered_json& a, const ordered_json& branch) {
    if (!a.is_boolean()) schema_error(path_, "unsupported keyword(s) 'additionalProperties' as a schema (only true or false so far)");
    if (a.get<bool>()) return;
    std::set<std::string> names;
    if (branch.contains("properties") && branch["properties"].is_object())
      for (auto it = branch["properties"].begin(); it != branch["properties"].end(); ++it) names.insert(it.key());
    if (!closed_) {
      allowed_ = names;
    } else {
      std::set<std::string> both;
      for (const auto& n : names)
        if (allowed_.count(n)) both.insert(n);
      allowed_ = both;
    }
    closed_ = true;
  }

  const ordered_json& root_;
  std::string path_;
  ordered_json out_ = ordered_json::object();
  bool closed_ = false;           // some branch has additionalProperties false
  std::set<std::string> allowed_;  // then: the property names all such branches allow
};

}  // namespace

ordered_json merge_all_of(const ordered_json& root, const ordered_json& s, const std::string& path) {
  Merger m(root, path);
  m.add(s, 0);
  return m.finish();
}

}  // namespace ferrum::structured
