#pragma once
// core/: errors, seeded random streams, threads, tensors, norms and balls, SIMD kernels, file I/O.
// Safetensors I/O (robustxlt/core/safetensors.hpp) is included on its own, and by nn/: it needs a JSON
// parser, which the rest of core does not.
#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/core/memory.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/objective.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
