#pragma once
// noise/: lexicons (MUSE and TSV neighbour tables), RS-DA synonym and CoSDA-ML code-switch samplers, RS-RP
// embedding noise. Depends on core/ only. JSON neighbour tables: robustxlt/noise/lexicon_json.hpp (not
// included here, so this header does not pull in a JSON parser).
#include "robustxlt/noise/lexicon.hpp"
#include "robustxlt/noise/samplers.hpp"
#include "robustxlt/noise/text.hpp"
