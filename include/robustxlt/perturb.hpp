#pragma once
// perturb/: embedding perturbers (FGSM, PGD, FreeLB, SMART) and their building blocks. Depends on core/ only.
#include "robustxlt/core/objective.hpp"
#include "robustxlt/perturb/kernels.hpp"
#include "robustxlt/perturb/methods.hpp"
