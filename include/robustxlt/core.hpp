#pragma once
// core/: errors, seeded random streams, threads, tensors, SIMD kernels, file I/O and safetensors.
#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/core/memory.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/objective.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/safetensors.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
