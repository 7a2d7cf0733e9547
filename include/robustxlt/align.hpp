#pragma once
// align/: Pharaoh alignments, P/R/F/AER, alignment extraction, cross-lingual retrieval and mining, embedding
// diagnostics. Depends on core/ only.
#include "robustxlt/align/diagnostics.hpp"
#include "robustxlt/align/extract.hpp"
#include "robustxlt/align/pharaoh.hpp"
#include "robustxlt/align/retrieval.hpp"
#include "robustxlt/align/rows.hpp"
