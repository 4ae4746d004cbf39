// Test data and exact references for collectives: values per (type, rank,
// index), the reference reduction computed in fp64 (floats) or with the
// same wrap-around as the library (integers), and the error bound a float
// reduction of n summands may show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqz.h"

namespace sqz::test {

// Raw bytes of `count` elements of `type` for `rank`. For prod the values
// stay near 1 (floats) or small (integers) so products stay in range.
std::vector<unsigned char> makeInput(sqzDataType_t type, sqzRedOp_t op, int rank, size_t count, uint64_t seed);

// Element i of a typed buffer as double (integers converted exactly where
// they fit, which they do for the values makeInput draws).
double elementAsDouble(const void* buf, sqzDataType_t type, size_t i);

// Checks `result` against the reduction of inputs[0..n). Returns "" when
// correct, otherwise a description of the first wrong element.
std::string checkReduction(const std::vector<std::vector<unsigned char>>& inputs, const void* result,
                           sqzDataType_t type, sqzRedOp_t op, size_t count);

// Unit roundoff of a type (2^-11 fp16, 2^-8 bf16, 2^-24 fp32, else 2^-53).
double unitRoundoff(sqzDataType_t t);

// FNV-1a of a buffer's bytes (comparing results across ranks by hash).
uint64_t fnv1a(const void* data, size_t bytes);

// A float32 gradient for `rank`: N(0, 1) scaled by 1 + rank, from (seed, rank).
std::vector<float> rankGradient(int rank, size_t count, uint64_t seed);

}  // namespace sqz::test
