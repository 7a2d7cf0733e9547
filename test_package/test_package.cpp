// Uses the packaged headers: Cohen et al.'s CERTIFY for 99000 votes out of 100000 at alpha = 0.001 and
// sigma = 0.25 has the published radius 0.5725.
#include <robustxlt/robustxlt.hpp>

#include <cmath>
#include <cstdio>

int main() {
  const auto c = robustxlt::smooth::certify(0, 99000, 100000, 0.001, 0.25);
  std::printf("robustxlt %s: certified radius %.4f\n", robustxlt::version_string, c.radius);
  return c.label == 0 && std::fabs(c.radius - 0.5725) < 1e-4 ? 0 : 1;
}
