#pragma once
// noise/: lexicons (MUSE, JSON and TSV neighbour tables), RS-DA synonym and CoSDA-ML code-switch samplers,
// RS-RP embedding noise. Depends on core/ only.
#include "robustxlt/noise/lexicon.hpp"
#include "robustxlt/noise/samplers.hpp"
#include "robustxlt/noise/text.hpp"
