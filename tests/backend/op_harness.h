// The backend op harness, in the manner of llama.cpp's test-backend-ops: a table of cases (op,
// weight format and dtype, activation dtype, shape, parameters), each run on a backend with
// fresh seeded inputs and compared with a naive double-precision reference written here (not
// the CPU backend), within a bound for the op and its dtypes. The same cases, at Llama-3.1-8B
// shapes, time the ops (bench/op_perf.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace ferrum::op_harness {

// How far a case's outputs are from the reference: the worst, over its outputs, of
// max |got - ref| / max |ref|. An output the op must not write holds NaN in both.
struct Comparison {
  double error = 0, bound = 0;
  std::string worst;  // the output and element with the largest error
  bool passed() const { return error <= bound; }
};

// One case's op with its inputs in place on a backend (run and compare refer to the case and
// the backends: use them while those live).
struct PreparedOp {
  std::function<void()> run;            // issues the op (queued, on a device)
  std::function<Comparison()> compare;  // after run(); empty when prepared for timing
  double bytes = 0;                     // read and written by one run
  double weight_bytes = 0;              // of those, a linear layer's weights
};

class OpCase {
 public:
  virtual ~OpCase() = default;
  virtual std::string name() const = 0;
  // Why `be` cannot run this case; empty when it can.
  virtual std::string unsupported(const Backend& be) const { return {}; }
  // Inputs on `be` from `seed`; `host` (a CPU backend) holds the host sources of linear
  // weights. For timing (with_reference false) weights are the backend's dummy fill and no
  // reference is prepared.
  virtual PreparedOp prepare(Backend& be, Backend& host, uint64_t seed, bool with_reference) const = 0;
};
using CaseList = std::vector<std::unique_ptr<OpCase>>;

// Every op over awkward shapes, all weight dtypes, epilogues, GQA groups, caches and batches.
CaseList correctness_cases();
// Llama-3.1-8B shapes (hidden 4096, 32/8 heads of 128, MLP 14336, vocab 128256) for `rows`
// tokens, weights of `weights` dtype and activations of `act`; the layers' linear weights in
// `format` (GGUF blocks random as the correctness cases make them; GPTQ/AWQ/FP8 the backend's
// random fill, int4 in groups of 128), the output layer dense.
CaseList llama8b_cases(int64_t rows, DType weights, DType act, WeightFormat format = WeightFormat::Dense);

struct CaseOutcome {
  enum class Status { Passed, Failed, Skipped } status;
  std::string name, message;  // message: the error and bound, why it failed or was skipped
};
// Runs the cases whose name contains `filter` on `be`, printing a line per case and a summary.
std::vector<CaseOutcome> run_cases(Backend& be, const CaseList& cases, const std::string& filter = "");

// The seed of a case's inputs (from its name, so that a case's inputs do not depend on
// which other cases run).
uint64_t case_seed(const std::string& name);

}  // namespace ferrum::op_harness
