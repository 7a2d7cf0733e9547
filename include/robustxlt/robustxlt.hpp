#pragma once
// Umbrella header: includes every public header of robustxlt (optional parts aside), the JSON-dependent
// ones too (core/safetensors.hpp, noise/lexicon_json.hpp).
#include "robustxlt/align.hpp"
#include "robustxlt/core.hpp"
#include "robustxlt/core/safetensors.hpp"
#include "robustxlt/nn.hpp"
#include "robustxlt/noise.hpp"
#include "robustxlt/noise/lexicon_json.hpp"
#include "robustxlt/perturb.hpp"
#include "robustxlt/smooth.hpp"
#include "robustxlt/version.hpp"
