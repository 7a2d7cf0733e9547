#pragma once
// align/: Pharaoh alignments, P/R/F/AER, alignment extraction from similarity matrices. Depends on core/ only.
#include "robustxlt/align/extract.hpp"
#include "robustxlt/align/pharaoh.hpp"
