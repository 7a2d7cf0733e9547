#!/usr/bin/env python3
"""What including one robustxlt header costs: compile time and peak compiler memory of a translation unit that
includes it and has an empty main, against a baseline unit with <Eigen/Dense> and <xtensor/xarray.hpp> (what
any user of the library already pays), all compiled in the same run with the same flags.

    python3 bench/compile_time.py [--cxx g++] [--repeat 3] [--markdown]

Prints one row per header: the best wall time of --repeat compiles, its ratio to the baseline's, the peak
resident memory of the compiler, and whether the header pulls in nlohmann/json or Boost (from g++ -M). The
targets (module headers <= 1.5x the baseline, the umbrella <= 2.5x, core.hpp without JSON or Boost) are
checked and reported, not enforced: the exit code is 0 either way. Nothing is written outside a temporary
directory. Run it on a quiet machine: other work on the cores moves every figure.
"""
import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = "baseline (<Eigen/Dense> + <xtensor/xarray.hpp>)"
HEADERS = [
    "robustxlt/core.hpp",
    "robustxlt/perturb.hpp",
    "robustxlt/noise.hpp",
    "robustxlt/smooth.hpp",
    "robustxlt/align.hpp",
    "robustxlt/nn.hpp",
    "robustxlt/robustxlt.hpp",
]
MODULE_TARGET, UMBRELLA_TARGET = 1.5, 2.5


def source_for(header):
    if header == BASELINE:
        return "#include <Eigen/Dense>\n#include <xtensor/xarray.hpp>\nint main() { return 0; }\n"
    return f"#include <{header}>\nint main() {{ return 0; }}\n"


def compile_once(cxx, flags, path):
    """Wall seconds of one compile through the driver (compiler and assembler)."""
    start = time.perf_counter()
    if subprocess.run([cxx, *flags, "-c", str(path), "-o", os.devnull]).returncode != 0:
        sys.exit(f"compile_time: {cxx} failed on {path}")
    return time.perf_counter() - start


def peak_memory(cxx, flags, path):
    """Peak RSS (MiB) of the compiler proper (cc1plus), run directly with the arguments the driver gives it
    (the driver's own rusage would not include its child)."""
    out = subprocess.run([cxx, *flags, "-c", str(path), "-o", os.devnull, "-###"], capture_output=True, text=True)
    commands = [shlex.split(line) for line in out.stderr.splitlines() if line.startswith(" ")]
    argv = next((c for c in commands if c and c[0].endswith("cc1plus")), None)
    if argv is None:
        return float("nan")
    if "-o" in argv:  # the assembly the driver would pass on: not kept
        argv[argv.index("-o") + 1] = os.devnull
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compile_time: cc1plus failed on {path}")
    return usage.ru_maxrss / 1024.0


def dependencies(cxx, flags, path):
    out = subprocess.run([cxx, *flags, "-M", str(path)], capture_output=True, text=True, check=True).stdout
    return out.replace("\\\n", " ").split()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cxx", default="g++")
    ap.add_argument("--repeat", type=int, default=3, help="compiles per header; the best time is reported")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table (for bench/README.md)")
    args = ap.parse_args()
    includes = ["-I" + str(ROOT / "include"), "-I/usr/include/eigen3"]
    flags = ["-std=c++17", "-O2", *includes]
    version = subprocess.run([args.cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        units = []
        for h in [BASELINE, *HEADERS]:
            p = pathlib.Path(tmp) / (h.replace("/", "_").replace(" ", "_").replace("<", "").replace(">", "")[:40] + ".cpp")
            p.write_text(source_for(h))
            units.append((h, p))
        best = {h: float("inf") for h, _ in units}
        # Interleaved rounds: a slow spell of the machine hits every header alike.
        for _ in range(args.repeat):
            for h, p in units:
                best[h] = min(best[h], compile_once(args.cxx, flags, p))
        for h, p in units:
            deps = dependencies(args.cxx, flags, p)
            rows.append((h, best[h], peak_memory(args.cxx, flags, p), any("nlohmann" in d for d in deps),
                         any("/boost/" in d for d in deps)))
    base = rows[0][1]
    print(f"# {version}; flags: -std=c++17 -O2; best of {args.repeat}; {os.cpu_count()} cores")
    if args.markdown:
        print("| header | seconds | x baseline | target | peak MiB | JSON | Boost |")
        print("|---|---|---|---|---|---|---|")
    failed = []
    for h, s, mib, json, boost in rows:
        ratio = s / base
        if h == BASELINE:
            target = ""
        else:
            limit = UMBRELLA_TARGET if h.endswith("robustxlt.hpp") else MODULE_TARGET
            ok = ratio <= limit and not (h.endswith("core.hpp") and (json or boost))
            target = f"<= {limit}x {'met' if ok else 'NOT met'}"
            if not ok:
                failed.append(h)
        yes = lambda b: "yes" if b else "no"
        if args.markdown:
            print(f"| `{h}` | {s:.2f} | {ratio:.2f} | {target} | {mib:.0f} | {yes(json)} | {yes(boost)} |")
        else:
            print(f"{h:52s} {s:6.2f} s {ratio:5.2f}x {mib:7.0f} MiB  json={yes(json)} boost={yes(boost)}  {target}")
    print(f"# targets not met: {', '.join(failed) if failed else 'none'}")


if __name__ == "__main__":
    main()
