#!/usr/bin/env python3
"""Checks the paired-difference rows of zero_shot_results.csv against its per-seed rows.

For every recipe other than the baseline and every language (and "avg", the mean over the languages, as in
the tables), recomputes from the per-seed zero-shot accuracies d_s = acc(recipe, s) - acc(baseline, s), their
mean, sample standard deviation and the 95% interval mean +- t sd / sqrt(n), with t = scipy.stats.t.ppf(0.975,
n - 1), and compares them with the paired rows the demo wrote. Requires every recipe to have the same seeds
as the baseline. Exits 1 with a message on the first failed check, 77 (skipped) without SciPy.
"""
import argparse
import csv
import math
import statistics
import sys


def fail(msg):
    print(f"check_zero_shot_paired: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--baseline", default="standard")
    ap.add_argument("--min-seeds", type=int, default=2, help="fail unless every recipe has at least this many seeds")
    args = ap.parse_args()
    try:
        from scipy.stats import t as student_t
    except ImportError:
        print("check_zero_shot_paired: SciPy not installed (python3-scipy), skipped", file=sys.stderr)
        sys.exit(77)

    with open(args.csv, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["recipe", "seed", "language", "setting", "metric", "value"]:
        fail(f"unexpected header {rows[:1]}")
    acc = {}  # (recipe, seed, language) -> accuracy
    paired = {}  # (recipe, language, metric) -> value
    languages = []
    for r in rows[1:]:
        if len(r) != 6:
            fail(f"row with {len(r)} fields: {r}")
        recipe, seed, language, setting, metric, value = r
        v = float(value)
        if setting == "zero-shot" and metric == "accuracy":
            acc[(recipe, int(seed), language)] = v
            if language not in languages:
                languages.append(language)
        elif setting == "paired":
            if seed != "all":
                fail(f"paired row with seed '{seed}': {r}")
            if (recipe, language, metric) in paired:
                fail(f"duplicate paired row {r}")
            paired[(recipe, language, metric)] = v
    recipes = sorted({k[0] for k in acc})
    if args.baseline not in recipes:
        fail(f"no per-seed rows of the baseline '{args.baseline}'")
    seeds = {rec: sorted({k[1] for k in acc if k[0] == rec}) for rec in recipes}
    prefix = f"accuracy_diff_vs_{args.baseline}_"
    checked = 0
    for rec in recipes:
        if rec == args.baseline:
            if any(k[0] == rec for k in paired):
                fail(f"paired rows for the baseline itself")
            continue
        if seeds[rec] != seeds[args.baseline]:
            fail(f"{rec} has seeds {seeds[rec]}, the baseline {seeds[args.baseline]}: not paired")
        n = len(seeds[rec])
        if n < args.min_seeds:
            fail(f"{rec} has {n} seeds, fewer than --min-seeds {args.min_seeds}")
        for lang in languages + ["avg"]:
            d = []
            for s in seeds[rec]:
                if lang == "avg":
                    a = statistics.fmean(acc[(rec, s, l)] for l in languages)
                    b = statistics.fmean(acc[(args.baseline, s, l)] for l in languages)
                else:
                    a, b = acc[(rec, s, lang)], acc[(args.baseline, s, lang)]
                d.append(a - b)
            mean = statistics.fmean(d)
            sd = statistics.stdev(d) if n > 1 else 0.0
            want = {prefix + "mean": mean, prefix + "sd": sd}
            if n > 1:
                t = float(student_t.ppf(0.975, n - 1))
                half = t * sd / math.sqrt(n)
                want.update({"t_0.975": t, prefix + "low": mean - half, prefix + "high": mean + half})
            for metric, w in want.items():
                key = (rec, lang, metric)
                if key not in paired:
                    fail(f"missing paired row {key}")
                # The CSV holds 6 decimals; per-seed values rounded by 5e-7 move a bound by at most
                # (1 + t / sqrt(n)) * 1e-6 (t <= 12.71).
                tol = 1e-6 * (2 + (t if n > 1 else 0))
                if abs(paired[key] - w) > tol:
                    fail(f"{key}: CSV {paired[key]:.6f}, recomputed {w:.6f}")
                checked += 1
            del_keys = [k for k in paired if k[0] == rec and k[1] == lang]
            extra = set(m for _, _, m in del_keys) - set(want)
            if extra:
                fail(f"unexpected paired metrics for {rec} {lang}: {sorted(extra)}")
    print(f"check_zero_shot_paired: {checked} paired values of {len(recipes) - 1} recipes x {len(languages) + 1} columns "
          f"over {len(seeds[args.baseline])} seeds match the per-seed rows")


if __name__ == "__main__":
    main()
