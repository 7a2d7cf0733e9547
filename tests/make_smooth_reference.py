#!/usr/bin/env python3
"""Reference values for smooth/ computed with SciPy.

Usage: make_smooth_reference.py OUT.json   (exit 77 when python3-scipy is missing)

Writes Clopper-Pearson lower bounds (beta.ppf(alpha, k, n - k + 1)), Cohen radii (sigma * norm.ppf),
two-sided binomial test p-values against 1/2 (binomtest) and normal quantiles for a grid of inputs.
"""
import json
import os
import sys

try:
    from scipy.stats import beta, binomtest, norm
except ImportError:
    print("make_smooth_reference: SciPy (python3-scipy) not installed, skipping", file=sys.stderr)
    sys.exit(77)


def main(argv):
    if len(argv) != 2:
        print("usage: %s OUT.json" % os.path.basename(argv[0]), file=sys.stderr)
        return 2
    cp = []
    for n in (1, 10, 100, 1000, 100000):
        for k in sorted({0, 1, n // 3, n // 2, (9 * n) // 10, n - 1, n}):
            if k < 0 or k > n:
                continue
            for alpha in (0.001, 0.01, 0.05):
                lower = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
                cp.append({"k": k, "n": n, "alpha": alpha, "lower": lower})
    binom = []
    for n in (1, 2, 10, 25, 100, 1000):
        for k in sorted({0, 1, n // 4, n // 2, (3 * n) // 5, n - 1, n}):
            if 0 <= k <= n:
                binom.append({"k": k, "n": n, "p": float(binomtest(k, n, 0.5, alternative="two-sided").pvalue)})
    quant = [{"p": p, "z": float(norm.ppf(p))} for p in (1e-6, 0.001, 0.1, 0.5, 0.75, 0.9, 0.99, 0.99993)]
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"clopper_pearson": cp, "binomial_two_sided": binom, "normal_quantile": quant}, f, indent=1)
    os.replace(tmp, argv[1])
    print("%s: %d Clopper-Pearson, %d binomial, %d quantile values" % (argv[1], len(cp), len(binom), len(quant)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
