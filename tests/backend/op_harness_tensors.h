// Tensor plumbing and the comparison of the backend op harness (op_harness.cpp): reading any
// tensor's values as doubles, writing inputs, NaN-poisoned outputs, rotary tables, and the
// relative error of outputs against their references.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "backend/backend.h"
#include "op_harness.h"
#include "op_harness_reference.h"

namespace ferrum::op_harness {

constexpr int64_t kRopePositions = 4096;
constexpr double kRopeTheta = 500000.0;  // Llama 3's

// Element i of raw values of dtype dt (F32, I32, F16, BF16, F8E4M3) as a double.
double element(const uint8_t* raw, DType dt, size_t i);
// A tensor's values (wherever it lives) as doubles.
Values read_values(Backend& be, const Tensor& t);
// Copies host bytes into t and waits, so that the source may go away.
void write_bytes(Backend& be, Tensor& t, const void* src);
Tensor ints(Backend& be, const std::vector<int32_t>& v);
// A tensor of NaN: an element the op leaves unwritten stays NaN and fails the comparison.
Tensor poisoned(Backend& be, std::initializer_list<int64_t> shape, DType dt);
// Uniform integers in [lo, hi].
std::vector<int32_t> random_ints(size_t n, int32_t lo, int32_t hi, uint64_t seed);
// Rotary tables as models build them (float cos/sin of float angles), uploaded to `be`.
RopeTable rope_table(Backend& be, int64_t head_dim);

struct Output {
  const char* name;
  Values got, ref;
};
// The worst max |got - ref| / max |ref| over the outputs (a NaN reference must stay NaN).
Comparison compare(const std::vector<Output>& outputs, double bound);

}  // namespace ferrum::op_harness
