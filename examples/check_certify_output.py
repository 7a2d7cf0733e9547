#!/usr/bin/env python3
"""Checks a file written by the certify example against the data it certified.

Checks the header and column count of Cohen et al.'s row format, one row per certified example in order,
labels equal to the data file's, abstain rows (predict -1) with radius 0, correct == (label == predict),
the time format. With the count and pA_lower columns (certify --counts) it recomputes, with the Python
standard library only (independently of the C++ code), the Clopper-Pearson lower bound of every
row from its count, whether the row must abstain, and its radius sigma * Phi^-1(pA_lower).
Exits 1 with a message on the first failed check.
"""
import argparse
import math
import re
import statistics
import sys

HEADER = ["idx", "label", "predict", "radius", "correct", "time"]


def fail(msg):
    print(f"check_certify_output: {msg}", file=sys.stderr)
    sys.exit(1)


def binomial_upper_tail(k, n, p):
    """P(X >= k) for X ~ Bin(n, p)."""
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return math.fsum(math.exp(base - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq)
                     for j in range(k, n + 1))


def clopper_pearson_lower(k, n, alpha):
    """The p with P(Bin(n, p) >= k) = alpha (the alpha quantile of Beta(k, n - k + 1)), by bisection."""
    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if binomial_upper_tail(k, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def read_data(path):
    labels = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line or line.startswith("#"):
                continue
            labels.append(int(line.split("\t", 1)[0]))
    return labels


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        fail(f"{path} is empty")
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def close(a, b, rel, abs_tol=0.0):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_tol)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--data", required=True, help="the data file certify read")
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--n", type=int, required=True, help="estimation copies per example")
    ap.add_argument("--skip", type=int, default=1)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--compare", help="another certify output whose first five columns must be identical")
    ap.add_argument("--expect-all-abstain", action="store_true")
    ap.add_argument("--min-certified", type=int, default=0, help="fail unless at least this many rows certify")
    args = ap.parse_args()

    labels = read_data(args.data)
    header, rows = read_rows(args.output)
    with_counts = len(header) == 8
    if header[:6] != HEADER or (with_counts and header[6:] != ["count", "pA_lower"]) or len(header) not in (6, 8):
        fail(f"header {header}, expected {HEADER} (+ count, pA_lower)")
    expected_idx = list(range(0, len(labels), args.skip))
    if len(rows) != len(expected_idx):
        fail(f"{len(rows)} rows for {len(labels)} examples with skip {args.skip}, expected {len(expected_idx)}")
    time_re = re.compile(r"^\d+:\d\d:\d\d\.\d{6}$")
    certified = abstained = radius_checks = 0
    for r, (row, idx) in enumerate(zip(rows, expected_idx), start=2):
        if len(row) != len(header):
            fail(f"line {r}: {len(row)} columns, expected {len(header)}")
        i, label, predict, correct = int(row[0]), int(row[1]), int(row[2]), int(row[4])
        radius = float(row[3])
        if i != idx:
            fail(f"line {r}: idx {i}, expected {idx}")
        if label != labels[idx]:
            fail(f"line {r}: label {label}, but example {idx} of the data file has label {labels[idx]}")
        if not (predict == -1 or 0 <= predict < args.classes):
            fail(f"line {r}: predict {predict} is neither -1 nor a class in [0, {args.classes})")
        if correct != int(label == predict):
            fail(f"line {r}: correct {correct} but label {label} and predict {predict}")
        if predict == -1:
            abstained += 1
            if radius != 0.0:
                fail(f"line {r}: abstained with radius {radius}, expected 0")
        else:
            certified += 1
            if not radius >= 0.0:
                fail(f"line {r}: negative radius {radius}")
        if not time_re.match(row[5]):
            fail(f"line {r}: time '{row[5]}' is not h:mm:ss.ffffff")
        if with_counts:
            count, p_lower = int(row[6]), float(row[7])
            if not 0 <= count <= args.n:
                fail(f"line {r}: count {count} outside [0, {args.n}]")
            ref = clopper_pearson_lower(count, args.n, args.alpha)
            if not close(p_lower, ref, 1e-7, 1e-12):
                fail(f"line {r}: pA_lower {p_lower}, but {count} of {args.n} at alpha {args.alpha} gives {ref!r}")
            if (ref < 0.5) != (predict == -1):
                fail(f"line {r}: pA_lower {ref} {'<' if ref < 0.5 else '>='} 1/2 but predict is {predict}")
            if predict != -1:
                ref_radius = args.sigma * statistics.NormalDist().inv_cdf(ref)
                if not close(radius, ref_radius, 2e-5, 1e-9):
                    fail(f"line {r}: radius {radius}, but sigma * Phi^-1({ref}) = {ref_radius!r}")
                radius_checks += 1
    if args.expect_all_abstain and certified:
        fail(f"{certified} rows certified, expected every row to abstain")
    if certified < args.min_certified:
        fail(f"{certified} rows certified, expected at least {args.min_certified}")
    if args.compare:
        other_header, other = read_rows(args.compare)
        if other_header[:6] != HEADER or len(other) != len(rows):
            fail(f"{args.compare}: header or row count differs from {args.output}")
        for r, (a, b) in enumerate(zip(rows, other), start=2):
            if a[:5] != b[:5]:
                fail(f"line {r}: {a[:5]} in {args.output} but {b[:5]} in {args.compare}")
    print(f"check_certify_output: {args.output}: {len(rows)} rows ok ({certified} certified, {abstained} abstained, "
          f"{radius_checks} radii recomputed{', same as ' + args.compare if args.compare else ''})")


if __name__ == "__main__":
    main()
