#pragma once
#include <nlohmann/json.hpp>

namespace ferrum {
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
}  // namespace ferrum
