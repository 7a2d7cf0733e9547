#pragma once
// Umbrella header: includes every public header of robustxlt.
#include "robustxlt/align.hpp"
#include "robustxlt/core.hpp"
#include "robustxlt/nn.hpp"
#include "robustxlt/noise.hpp"
#include "robustxlt/perturb.hpp"
#include "robustxlt/smooth.hpp"
#include "robustxlt/version.hpp"
