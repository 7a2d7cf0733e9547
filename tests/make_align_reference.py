#!/usr/bin/env python3
"""Reference values for align/ computed with SciPy and NumPy.

Usage: make_align_reference.py OUT.safetensors   (exit 77 when python3-scipy is missing)

Writes random similarity matrices up to 200 x 200 with the total weight of SciPy's linear_sum_assignment
(maximised), and for random embeddings the cosine and CSLS neighbours and the ratio-margin mined pairs,
computed here with plain NumPy from their definitions.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
from make_nn_fixtures import write_safetensors, SKIP_RC  # noqa: E402

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:
    print("make_align_reference: SciPy (python3-scipy) not installed, skipping", file=sys.stderr)
    sys.exit(SKIP_RC)

SHAPES = [(5, 7), (7, 5), (50, 50), (120, 80), (200, 200), (200, 150)]
K, CSLS_K, MARGIN_K = 5, 10, 4


def normalise(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def mean_top(s, k, axis):
    return -np.mean(np.sort(-s, axis=axis).take(range(k), axis=axis), axis=axis)


def main(argv):
    if len(argv) != 2:
        print("usage: %s OUT.safetensors" % os.path.basename(argv[0]), file=sys.stderr)
        return 2
    rng = np.random.default_rng(2024)
    tensors = []
    for m, n in SHAPES:
        sim = rng.random((m, n))
        rows, cols = linear_sum_assignment(sim, maximize=True)
        tensors.append(("match.sim.%dx%d" % (m, n), sim))
        tensors.append(("match.total.%dx%d" % (m, n), np.array([sim[rows, cols].sum()])))
    x = rng.standard_normal((50, 16))
    y = rng.standard_normal((60, 16))
    s = normalise(x) @ normalise(y).T
    order = np.argsort(-s, axis=1, kind="stable")[:, :K]
    tensors += [("retrieval.x", x), ("retrieval.y", y), ("cos.index", order.astype(np.int64)),
                ("cos.score", np.take_along_axis(s, order, axis=1))]
    csls = 2 * s - mean_top(s, CSLS_K, 1)[:, None] - mean_top(s, CSLS_K, 0)[None, :]
    order = np.argsort(-csls, axis=1, kind="stable")[:, :K]
    tensors += [("csls.index", order.astype(np.int64)), ("csls.score", np.take_along_axis(csls, order, axis=1))]
    margin = s / ((mean_top(s, MARGIN_K, 1)[:, None] + mean_top(s, MARGIN_K, 0)[None, :]) / 2)
    cand = {(i, int(np.argmax(margin[i]))) for i in range(margin.shape[0])}
    cand |= {(int(np.argmax(margin[:, j])), j) for j in range(margin.shape[1])}
    used_s, used_t, mined = set(), set(), []
    for score, i, j in sorted(((-margin[i, j], i, j) for i, j in cand)):
        if i in used_s or j in used_t:
            continue
        used_s.add(i)
        used_t.add(j)
        mined.append((i, j, -score))
    tensors += [("margin.source", np.array([p[0] for p in mined], dtype=np.int64)),
                ("margin.target", np.array([p[1] for p in mined], dtype=np.int64)),
                ("margin.score", np.array([p[2] for p in mined]))]
    write_safetensors(argv[1], [(k, np.ascontiguousarray(v)) for k, v in tensors],
                      {"k": str(K), "csls_k": str(CSLS_K), "margin_k": str(MARGIN_K)})
    print("%s: %d tensors" % (argv[1], len(tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
