#!/usr/bin/env python3
"""Alignment extraction: robustxlt (bench_align) against SciPy and NumPy on the same matrix sizes.

Usage: compare_align_python.py --bench PATH_TO_bench_align [--repeats N]

Times SciPy's linear_sum_assignment (maximize=True) against align/match, and the NumPy formulations of
argmax intersection and itermax (the usual vectorised ones) against align/argmax and align/itermax, on
random uniform 128 x 128 and 512 x 512 float64 matrices, one thread on both sides.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np


def np_argmax(sim):
    m, n = sim.shape
    forward = np.eye(n)[sim.argmax(axis=1)]
    backward = np.eye(m)[sim.argmax(axis=0)]
    return forward * backward.transpose()


def np_itermax(sim, max_count=2, alpha_ratio=0.9):
    m, n = sim.shape
    inter = np_argmax(sim)
    if min(m, n) <= 2:
        return inter
    count = 1
    while count < max_count:
        mask_x = 1.0 - np.tile(inter.sum(1)[:, np.newaxis], (1, n)).clip(0.0, 1.0)
        mask_y = 1.0 - np.tile(inter.sum(0)[np.newaxis, :], (m, 1)).clip(0.0, 1.0)
        mask = ((alpha_ratio * mask_x) + (alpha_ratio * mask_y)).clip(0.0, 1.0)
        mask_zeros = 1.0 - ((1.0 - mask_x) * (1.0 - mask_y))
        if mask_x.sum() < 1.0 or mask_y.sum() < 1.0:
            mask *= 0.0
            mask_zeros *= 0.0
        new_sim = sim * mask
        fwd = np.eye(n)[new_sim.argmax(axis=1)] * mask_zeros
        bac = np.eye(m)[new_sim.argmax(axis=0)].transpose() * mask_zeros
        new_inter = fwd * bac
        if np.array_equal(inter + new_inter, inter):
            break
        inter = inter + new_inter
        count += 1
    return inter


def timeit(fn, arg, repeats):
    fn(arg)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        print("compare_align_python: SciPy (python3-scipy) not installed", file=sys.stderr)
        return 1
    proc = subprocess.run([args.bench, "--benchmark_format=json", "--benchmark_filter=align/(argmax|itermax|match)"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True)
    ours = {}
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for b in json.loads(proc.stdout[proc.stdout.find("{"):])["benchmarks"]:
        ours[b["name"]] = float(b["real_time"]) * unit[b.get("time_unit", "ns")]
    rng = np.random.default_rng(0)
    print("%-16s %6s %14s %16s %9s" % ("method", "size", "python ms", "robustxlt ms", "speedup"))
    print("-" * 66)
    for n in (128, 512):
        sim = rng.random((n, n))
        for name, fn in (("argmax", np_argmax), ("itermax", np_itermax),
                         ("match", lambda s: linear_sum_assignment(s, maximize=True))):
            theirs = timeit(fn, sim, args.repeats)
            mine = ours.get("align/%s/%d" % (name, n))
            print("%-16s %6d %14.3f %16s %8s" % (name, n, theirs * 1e3, "n/a" if mine is None else "%.3f" % (mine * 1e3),
                                                  "n/a" if mine is None else "%.1fx" % (theirs / mine)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
