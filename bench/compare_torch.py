#!/usr/bin/env python3
"""Time the same transformer training step in PyTorch and in the C++ benchmark.

Usage:
  compare_torch.py --bench PATH [--threads 1,2] [--repeats N]
                   [--configs bert_mini,small] [--min-time T] [--json OUT.json]

The C++ binary is a Google Benchmark executable exposing
  train_step/<config>/threads:<t>   (seconds per training step via real_time)
  gemm/eigen_f32/threads:1          (counter FLOPS, flop/s)
Missing benchmarks are reported as "n/a".
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# The model definition lives next to the fixture generator so both use
# exactly the same module structure.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, os.pardir, "tests"))
# Keep the source tree free of __pycache__ from that import.
sys.dont_write_bytecode = True

CONFIGS = {
    "bert_mini": dict(L=4, D=256, H=4, F=1024, T=128, B=32, V=8000, P=512, C=3,
                      S=2, repeats=5),
    "small": dict(L=2, D=128, H=2, F=512, T=64, B=16, V=8000, P=512, C=3,
                  S=2, repeats=20),
}
WARMUP_STEPS = 2
GEMM_BENCH = "gemm/eigen_f32/threads:1"

_TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def step_flops(c):
    """Analytic model FLOPs per training step (backward ~ 2x forward)."""
    B, T, D, F, L, C = c["B"], c["T"], c["D"], c["F"], c["L"], c["C"]
    fwd = (2 * B * T * (L * (4 * D * D + 2 * D * F))
           + L * 4 * B * T * T * D
           + 2 * B * D * C)
    return 3 * fwd


# ---------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------

def torch_blas_info():
    """Which BLAS this PyTorch calls; a generic build follows libblas.so.3,
    which may be the slow reference implementation."""
    import torch
    cfg = torch.__config__.show()
    info = {"blas_info": None, "libblas": None}
    if "BLAS_INFO=" in cfg:
        info["blas_info"] = cfg.split("BLAS_INFO=", 1)[1].split(",", 1)[0].strip()
    for cand in ("/usr/lib/x86_64-linux-gnu/libblas.so.3",
                 "/usr/lib/aarch64-linux-gnu/libblas.so.3"):
        if os.path.exists(cand):
            info["libblas"] = os.path.realpath(cand)
            break
    return info


def time_torch(name, c, threads, repeats):
    import torch
    import torch.nn.functional as F
    from make_nn_fixtures import Model

    torch.manual_seed(1234)
    model = Model(c["V"], c["P"], c["S"], c["D"], c["H"], c["F"], c["L"],
                  c["C"], pre_ln=False, emb_norm=True, pooling="first",
                  eps=1e-5).float()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    B, T = c["B"], c["T"]
    ids = torch.randint(0, c["V"], (B, T), dtype=torch.int64)
    mask = torch.ones(B, T, dtype=torch.int64)
    segments = torch.randint(0, c["S"], (B, T), dtype=torch.int64)
    labels = torch.randint(0, c["C"], (B,), dtype=torch.int64)

    def step():
        opt.zero_grad(set_to_none=False)
        logits, _ = model(ids, mask, segments)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        opt.step()

    results = {}
    for t in threads:
        torch.set_num_threads(t)
        for _ in range(WARMUP_STEPS):
            step()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        results[t] = statistics.median(times)
    return results


def time_torch_isolated(name, threads, repeats):
    """Times each thread count in a fresh process whose BLAS and OpenMP pools
    are limited to that many threads: torch.set_num_threads alone leaves a
    pthread OpenBLAS free to use every core, which makes a "1 thread" run use
    two and a "2 thread" run oversubscribe."""
    results = {}
    for t in threads:
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(t)
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker",
               name, str(t), str(repeats)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env,
                              universal_newlines=True)
        if proc.returncode != 0:
            print("warning: torch worker for %s threads=%d failed" % (name, t),
                  file=sys.stderr)
            continue
        results[t] = json.loads(proc.stdout)["seconds"]
        print("  torch %-10s threads=%d: %.4f s/step (median of %d)"
              % (name, t, results[t], repeats), file=sys.stderr)
    return results


# ---------------------------------------------------------------------------
# C++ side
# ---------------------------------------------------------------------------

def run_bench(path, bench_filter, min_time):
    cmd = [path, "--benchmark_format=json", "--benchmark_filter=" + bench_filter]
    if min_time:
        cmd.append("--benchmark_min_time=" + min_time)
    print("running: %s" % " ".join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    except OSError as e:
        print("warning: cannot run %s: %s" % (path, e), file=sys.stderr)
        return []
    if proc.returncode != 0:
        print("warning: %s exited with %d: %s"
              % (path, proc.returncode, proc.stderr.strip()[-500:]), file=sys.stderr)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        # Some builds print log lines before the JSON object; retry from the first brace.
        start = proc.stdout.find("{")
        try:
            data = json.loads(proc.stdout[start:]) if start >= 0 else {}
        except ValueError:
            print("warning: could not parse JSON from %s" % path, file=sys.stderr)
            return []
    return data.get("benchmarks", []) if isinstance(data, dict) else []


def _matches(name, key):
    # Exact name or key followed by a suffix ("/real_time", "_mean", ...);
    # the separator check keeps "threads:1" from matching "threads:12".
    return name == key or (name.startswith(key) and name[len(key)] in "/_")


def find_bench(benchmarks, key):
    """Pick the entries for key: prefer a median aggregate, then plain runs."""
    hits = [b for b in benchmarks if _matches(b.get("name", ""), key)
            and not b.get("error_occurred")]
    if not hits:
        return None
    medians = [b for b in hits if b.get("aggregate_name") == "median"]
    if medians:
        return [medians[0]]
    runs = [b for b in hits if b.get("run_type", "iteration") == "iteration"]
    if runs:
        return runs
    means = [b for b in hits if b.get("aggregate_name") == "mean"]
    return means[:1] or None


def seconds_per_step(benchmarks, key):
    entries = find_bench(benchmarks, key)
    if not entries:
        return None
    vals = []
    for b in entries:
        try:
            vals.append(float(b["real_time"]) * _TIME_UNIT[b.get("time_unit", "ns")])
        except (KeyError, TypeError, ValueError):
            continue
    return statistics.median(vals) if vals else None


def gemm_flops(benchmarks):
    entries = find_bench(benchmarks, GEMM_BENCH)
    if not entries:
        return None
    vals = []
    for b in entries:
        try:
            vals.append(float(b["FLOPS"]))
        except (KeyError, TypeError, ValueError):
            continue
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def torch_worker(argv):
    name, threads, repeats = argv[0], int(argv[1]), int(argv[2])
    secs = time_torch(name, CONFIGS[name], [threads], repeats)[threads]
    print(json.dumps({"seconds": secs}))
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        return torch_worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to the C++ benchmark binary")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed torch steps per point (default: 5 bert_mini, 20 small)")
    ap.add_argument("--configs", default="bert_mini,small",
                    help="comma-separated subset of: " + ",".join(CONFIGS))
    ap.add_argument("--min-time", default=None,
                    help="forwarded as --benchmark_min_time to the C++ binary")
    ap.add_argument("--json", default=None, help="write all results to this file")
    args = ap.parse_args()

    try:
        threads = [int(x) for x in args.threads.split(",") if x.strip()]
    except ValueError:
        ap.error("--threads must be a comma-separated list of integers")
    if not threads or min(threads) < 1:
        ap.error("--threads needs positive integers")
    names = [x.strip() for x in args.configs.split(",") if x.strip()]
    for n in names:
        if n not in CONFIGS:
            ap.error("unknown config %r" % n)
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be >= 1")

    try:
        import torch
    except ImportError:
        print("compare_torch: PyTorch (python3-torch) not installed", file=sys.stderr)
        return 1

    blas = torch_blas_info()
    blas_line = "torch %s, BLAS_INFO=%s" % (torch.__version__, blas["blas_info"])
    if blas["blas_info"] == "generic" and blas["libblas"]:
        blas_line += " -> %s" % blas["libblas"]
        if "/blas/" in blas["libblas"]:
            blas_line += " (reference BLAS: torch timings will be slow)"

    train_benches = run_bench(args.bench, "train_step/", args.min_time)
    gemm_benches = run_bench(args.bench, "gemm/", args.min_time)
    gemm_rate = gemm_flops(gemm_benches)

    rows = []
    for name in names:
        c = CONFIGS[name]
        reps = args.repeats if args.repeats is not None else c["repeats"]
        tt = time_torch_isolated(name, threads, reps)
        flops = step_flops(c)
        for t in threads:
            ours = seconds_per_step(train_benches, "train_step/%s/threads:%d" % (name, t))
            theirs = tt.get(t)
            rows.append({
                "config": name,
                "threads": t,
                "torch_s_per_step": theirs,
                "robustxlt_s_per_step": ours,
                "speedup": (theirs / ours) if (theirs and ours) else None,
                "torch_gflops": (flops / theirs / 1e9) if theirs else None,
                "robustxlt_gflops": (flops / ours / 1e9) if ours else None,
                "flops_per_step": flops,
                "torch_repeats": reps,
            })

    hdr = ("%-10s %7s %14s %16s %9s %13s %12s"
           % ("config", "threads", "torch s/step", "robustxlt s/step",
              "speedup", "torch GFLOP/s", "ours GFLOP/s"))
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print("%-10s %7d %14s %16s %9s %13s %12s" % (
            r["config"], r["threads"],
            _fmt(r["torch_s_per_step"], ".4f"),
            _fmt(r["robustxlt_s_per_step"], ".4f"),
            "n/a" if r["speedup"] is None else "%.2fx" % r["speedup"],
            _fmt(r["torch_gflops"], ".1f"),
            _fmt(r["robustxlt_gflops"], ".1f")))

    print("(%s)" % blas_line)
    ref = next((r for r in rows if r["config"] == "bert_mini" and r["threads"] == 1), None)
    ours_frac = torch_frac = None
    print()
    print("single-thread GEMM (%s): %s GFLOP/s"
          % (GEMM_BENCH, _fmt(gemm_rate / 1e9 if gemm_rate else None, ".1f")))
    if ref is not None and gemm_rate:
        if ref["robustxlt_gflops"] is not None:
            ours_frac = ref["robustxlt_gflops"] * 1e9 / gemm_rate
        if ref["torch_gflops"] is not None:
            torch_frac = ref["torch_gflops"] * 1e9 / gemm_rate
    print("bert_mini 1-thread fraction of single-thread GEMM peak: ours %s, torch %s"
          % (_fmt(ours_frac, ".2f"), _fmt(torch_frac, ".2f")))

    if args.json:
        out = {
            "bench": os.path.abspath(args.bench),
            "torch_version": torch.__version__,
            "torch_blas": blas,
            "threads": threads,
            "configs": {n: CONFIGS[n] for n in names},
            "results": rows,
            "gemm_eigen_f32_threads1_flops": gemm_rate,
            "bert_mini_1t_fraction_of_gemm_peak": ours_frac,
            "torch_bert_mini_1t_fraction_of_gemm_peak": torch_frac,
            "raw_cxx_benchmarks": train_benches + gemm_benches,
        }
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2)
        os.replace(tmp, args.json)
        print("wrote %s" % args.json, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
