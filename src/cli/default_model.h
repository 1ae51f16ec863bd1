#pragma once
#include <string>

namespace ferrum::cli {

// The model `ferrum serve` / `ferrum run` use when none is given: ferrum-tiny, the small model
// that ships in the repository (models/ferrum-tiny), found next to the binary (build/ferrum ->
// ../models, or an install's ../share/ferrum/models) or in the source tree it was built from.
// Throws ferrum::Error naming the places it looked when it is nowhere.
std::string default_model_dir();

}  // namespace ferrum::cli
