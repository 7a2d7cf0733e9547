#!/usr/bin/env python3
"""Perturbation and noise kernels: robustxlt (bench_perturb) against the same updates written with PyTorch
tensor ops.

Usage: compare_perturb_torch.py --bench PATH_TO_bench_perturb [--repeats N] [--min-time T] [--repetitions R]

Both sides run on one thread over [32, 128, 768] float. Prints seconds per call, the speedup over PyTorch
and each kernel's bandwidth as a fraction of the triad in the same C++ binary; with R > 1 the C++ side
runs each benchmark R times in random order and reports the fastest run (other work on a shared machine
only ever adds time) next to the median. RS-RP noise is also shown on 2 threads against a 2-thread triad.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

B, T, D = 32, 128, 768


def torch_kernels():
    import torch
    g = torch.rand(B, T, D) * 2 - 1
    delta = (torch.rand(B, T, D) * 2 - 1) * 1e-3
    eps_l2, eps_linf, alpha = 1.0, 0.01, 0.003

    def fgsm_linf():
        return g.sign().mul_(eps_linf)

    def pgd_l2_token():
        n = g.norm(dim=-1, keepdim=True)
        delta.add_(alpha * g / n.clamp_min(1e-12))
        dn = delta.norm(dim=-1, keepdim=True)
        delta.mul_(torch.clamp(eps_l2 / dn.clamp_min(1e-12), max=1.0))

    def pgd_l2_sequence():
        n = g.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta.add_(alpha * g / n.clamp_min(1e-12))
        dn = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta.mul_(torch.clamp(eps_l2 / dn.clamp_min(1e-12), max=1.0))

    def pgd_linf_token():
        delta.add_(g.sign().mul_(alpha)).clamp_(-eps_linf, eps_linf)

    def l2_ball_start_token():
        z = torch.randn(B, T, D)
        z.div_(z.norm(dim=-1, keepdim=True))
        return z.mul_(eps_l2 * torch.rand(B, T, 1).pow_(1.0 / D))

    x = torch.rand(B, T, D) * 2 - 1
    noise = torch.empty(B, T, D)

    def gaussian_embedding_noise():  # RS-RP: x += sigma z, the draws into a preallocated buffer
        torch.randn(B, T, D, out=noise)
        x.add_(noise, alpha=0.01)

    def fill_normal():
        torch.randn(B, T, D, out=noise)

    return {"fgsm_linf": fgsm_linf, "pgd_l2_token": pgd_l2_token, "pgd_l2_sequence": pgd_l2_sequence,
            "pgd_linf_token": pgd_linf_token, "l2_ball_start_token": l2_ball_start_token,
            "gaussian_embedding_noise": gaussian_embedding_noise, "fill_normal": fill_normal}


def time_torch(repeats):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = {}
    for name, fn in torch_kernels().items():
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def time_cxx(path, min_time, repetitions):
    """Seconds per call (minimum and median over the repetitions) and bytes moved per call, per benchmark."""
    cmd = [path, "--benchmark_format=json", "--benchmark_filter=perturb/|noise/gaussian|noise/fill"]
    if min_time:
        cmd.append("--benchmark_min_time=" + min_time)
    if repetitions > 1:
        cmd += ["--benchmark_repetitions=%d" % repetitions, "--benchmark_enable_random_interleaving=true"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    data = json.loads(proc.stdout[proc.stdout.find("{"):])
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    runs = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        name = b["run_name"].split("/")[1] if "run_name" in b else b["name"].split("/")[1]
        t = float(b["real_time"]) * unit[b.get("time_unit", "ns")]
        runs.setdefault(name, []).append((t, float(b.get("bytes_per_second", 0)) * t))
    return {name: (min(t for t, _ in v), statistics.median(t for t, _ in v), v[0][1]) for name, v in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--min-time", default=None)
    ap.add_argument("--repetitions", type=int, default=1,
                    help="repetitions of each C++ benchmark, interleaved at random; ratios use the minimum and the "
                         "median time")
    args = ap.parse_args()
    env_threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    try:
        import torch  # noqa: F401
    except ImportError:
        print("compare_perturb_torch: PyTorch (python3-torch) not installed", file=sys.stderr)
        return 1
    theirs = time_torch(args.repeats)
    ours = time_cxx(args.bench, args.min_time, args.repetitions)
    triad = ours.get("triad")
    print("robustxlt: %s of %d repetition(s); PyTorch: median of %d calls" %
          ("minimum and median" if args.repetitions > 1 else "one run", args.repetitions, args.repeats))
    print("%-26s %9s %9s %9s %9s %9s %10s" % ("kernel", "torch ms", "ours ms", "speedup", "GB/s", "of triad",
                                             "(median)"))
    print("-" * 88)
    for name, t in theirs.items():
        o = ours.get(name)
        if o is None:
            print("%-26s %9.3f %9s" % (name, t * 1e3, "n/a"))
            continue
        best, med, nbytes = o
        frac = "%.2f" % ((nbytes / best) / (triad[2] / triad[0])) if triad else "n/a"
        frac_med = "%.2f" % ((nbytes / med) / (triad[2] / triad[1])) if triad else "n/a"
        print("%-26s %9.3f %9.3f %8.2fx %9.1f %9s %10s" % (name, t * 1e3, best * 1e3, t / best, nbytes / best / 1e9,
                                                          frac, frac_med))
    for name in ("gaussian_embedding_noise_2_threads",):
        if name in ours and "triad_2_threads" in ours:
            best, med, nbytes = ours[name]
            t2 = ours["triad_2_threads"]
            print("%-26s %9s %9.3f %9s %9.1f %9.2f %10.2f   (against the 2-thread triad)" % (
                name, "", best * 1e3, "", nbytes / best / 1e9, (nbytes / best) / (t2[2] / t2[0]),
                (nbytes / med) / (t2[2] / t2[1])))
    if triad:
        print("triad (a = b + s c) in the same binary: %.1f GB/s (median %.1f)" % (triad[2] / triad[0] / 1e9,
                                                                                   triad[2] / triad[1] / 1e9))
    if "triad_2_threads" in ours:
        t2 = ours["triad_2_threads"]
        print("triad on 2 threads: %.1f GB/s (median %.1f)" % (t2[2] / t2[0] / 1e9, t2[2] / t2[1] / 1e9))
    if "triad_widest_vectors" in ours:
        tw = ours["triad_widest_vectors"]
        print("triad with the build's widest vectors (not the yardstick): %.1f GB/s (median %.1f)" % (
            tw[2] / tw[0] / 1e9, tw[2] / tw[1] / 1e9))
    print("(1 thread on both sides; environment %s)" % env_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
