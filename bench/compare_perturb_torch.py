#!/usr/bin/env python3
"""Perturbation and noise kernels: robustxlt (bench_perturb) against the same updates written with PyTorch
tensor ops.

Usage: compare_perturb_torch.py --bench PATH_TO_bench_perturb [--repeats N] [--min-time T]

Both sides run on one thread over [32, 128, 768] float. Prints seconds per call, the speedup over PyTorch
and each kernel's bandwidth as a fraction of the triad in the same C++ binary.
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


def time_cxx(path, min_time):
    cmd = [path, "--benchmark_format=json", "--benchmark_filter=perturb/|noise/gaussian|noise/fill"]
    if min_time:
        cmd.append("--benchmark_min_time=" + min_time)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    data = json.loads(proc.stdout[proc.stdout.find("{"):])
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {}
    for b in data.get("benchmarks", []):
        name = b["name"].split("/")[1]
        out[name] = (float(b["real_time"]) * unit[b.get("time_unit", "ns")], float(b.get("bytes_per_second", 0)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--min-time", default=None)
    args = ap.parse_args()
    env_threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    try:
        import torch  # noqa: F401
    except ImportError:
        print("compare_perturb_torch: PyTorch (python3-torch) not installed", file=sys.stderr)
        return 1
    theirs = time_torch(args.repeats)
    ours = time_cxx(args.bench, args.min_time)
    triad = ours.get("triad", (None, None))[1]
    print("%-22s %14s %16s %9s %14s %12s" % ("kernel", "torch ms", "robustxlt ms", "speedup", "ours GB/s",
                                             "of triad"))
    print("-" * 92)
    for name, t in theirs.items():
        o = ours.get(name)
        if o is None:
            print("%-22s %14.3f %16s" % (name, t * 1e3, "n/a"))
            continue
        frac = "%.2f" % (o[1] / triad) if triad else "n/a"
        print("%-22s %14.3f %16.3f %8.2fx %14.1f %12s" % (name, t * 1e3, o[0] * 1e3, t / o[0], o[1] / 1e9, frac))
    if triad:
        print("triad (a = b + s c) in the same binary: %.1f GB/s" % (triad / 1e9))
    print("(1 thread on both sides; environment %s)" % env_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
