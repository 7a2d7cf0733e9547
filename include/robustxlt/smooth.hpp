#pragma once
// smooth/: vote aggregation over noisy copies, PREDICT / CERTIFY, substitution certificates. Depends on core/ only.
#include "robustxlt/smooth/aggregate.hpp"
#include "robustxlt/smooth/certify.hpp"
