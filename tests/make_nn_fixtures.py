#!/usr/bin/env python3
"""Generate reference fixtures for the transformer classifier tests.

Usage: make_nn_fixtures.py OUTDIR

For each config ("postln", "preln") writes
  OUTDIR/<name>.weights.safetensors     -- the model state_dict
  OUTDIR/<name>.io.safetensors          -- inputs, logits, loss and all gradients
  OUTDIR/<name>.train_init.safetensors  -- the same weights in float64
  OUTDIR/<name>.train.safetensors       -- a float64 training run from them: AdamW with linear warmup and
                                           decay and gradient clipping on the io batch, the loss before
                                           each step and after the last, and the final weights
Exits with 77 (ctest "skipped") when PyTorch is not available.
"""

import json
import math
import os
import struct
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    torch = None

SKIP_RC = 77

# ---------------------------------------------------------------------------
# safetensors I/O (hand-written so no extra python package is required)
# ---------------------------------------------------------------------------

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


def _dtype_name(arr):
    for name, dt in _DTYPES.items():
        if arr.dtype == dt.newbyteorder("="):
            return name
    raise TypeError("unsupported dtype %s" % arr.dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray) in the order they should be laid out."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, arr in tensors:
        if name in header:
            raise ValueError("duplicate tensor name %r" % name)
        dname = _dtype_name(arr)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[dname]).tobytes(order="C")
        header[name] = {
            "dtype": dname,
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data section starts 8-byte aligned.
    hbytes += b" " * ((-(8 + len(hbytes))) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)
    # Atomic publish: readers never see a half-written file.
    os.replace(tmp, path)
    return 8 + len(hbytes) + offset


def read_safetensors(path):
    """Return (dict name -> np.ndarray, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: truncated" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d exceeds file size" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * dt.itemsize or end > len(data):
            raise ValueError("%s: bad offsets for %s" % (path, name))
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
    return out, metadata


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

if torch is not None:

    class Model(nn.Module):
        def __init__(self, V, P, S, D, H, F, L, C, pre_ln, emb_norm, pooling, eps):
            super().__init__()
            if pooling not in ("first", "mean"):
                raise ValueError("pooling must be 'first' or 'mean'")
            self.pooling = pooling
            self.tok_embeddings = nn.Embedding(V, D)
            self.pos_embeddings = nn.Embedding(P, D)
            if S > 0:
                self.seg_embeddings = nn.Embedding(S, D)
            else:
                self.seg_embeddings = None
            self.emb_norm = nn.LayerNorm(D, eps=eps) if emb_norm else None
            layer = nn.TransformerEncoderLayer(
                D, H, F, dropout=0.0, activation="gelu", layer_norm_eps=eps,
                batch_first=True, norm_first=pre_ln)
            self.encoder = nn.TransformerEncoder(
                layer, L, norm=nn.LayerNorm(D, eps=eps) if pre_ln else None,
                enable_nested_tensor=False)
            self.classifier = nn.Linear(D, C)

        def forward(self, ids, mask, segments, retain_embedding_grad=False, delta=None):
            T = ids.shape[1]
            e = self.tok_embeddings(ids)
            if delta is not None:
                # A perturbation of the token embeddings, as the perturbers apply it.
                e = e + delta
            if retain_embedding_grad:
                e.retain_grad()
            pos = torch.arange(T, device=ids.device)
            x = e + self.pos_embeddings(pos)[None]
            if self.seg_embeddings is not None:
                x = x + self.seg_embeddings(segments)
            if self.emb_norm is not None:
                x = self.emb_norm(x)
            h = self.encoder(x, src_key_padding_mask=(mask == 0))
            if self.pooling == "first":
                pooled = h[:, 0, :]
            else:
                m = mask.to(h.dtype)
                pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
            return self.classifier(pooled), e

    def randomize_(model):
        """Non-default init so every gradient is clearly non-zero."""
        ln_params = set()
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm):
                ln_params.add(id(mod.weight))
                ln_params.add(id(mod.bias))
                with torch.no_grad():
                    mod.weight.copy_(1 + 0.1 * torch.randn_like(mod.weight))
                    mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
        with torch.no_grad():
            for p in model.parameters():
                if id(p) not in ln_params:
                    p.copy_(torch.randn_like(p) * 0.2)


CONFIGS = {
    "postln": dict(V=50, P=16, S=2, D=32, H=4, F=64, L=2, C=3, pre_ln=False,
                   emb_norm=True, pooling="first", eps=1e-5,
                   label_smoothing=0.0, B=3, T=10),
    "preln": dict(V=50, P=16, S=0, D=32, H=4, F=48, L=2, C=4, pre_ln=True,
                  emb_norm=False, pooling="mean", eps=1e-5,
                  label_smoothing=0.1, B=3, T=10),
}
LENGTHS = [10, 7, 4]
# The training run: optimizer, schedule and clipping as a fine-tuning loop uses them.
TRAIN = dict(steps=5, lr=1e-2, weight_decay=0.01, warmup=2, total=6, clip=1.0)


def build_model(cfg):
    return Model(cfg["V"], cfg["P"], cfg["S"], cfg["D"], cfg["H"], cfg["F"],
                 cfg["L"], cfg["C"], cfg["pre_ln"], cfg["emb_norm"],
                 cfg["pooling"], cfg["eps"])


def metadata_for(cfg):
    return {
        "vocab_size": str(cfg["V"]),
        "max_positions": str(cfg["P"]),
        "type_vocab_size": str(cfg["S"]),
        "dim": str(cfg["D"]),
        "heads": str(cfg["H"]),
        "ff_dim": str(cfg["F"]),
        "layers": str(cfg["L"]),
        "num_classes": str(cfg["C"]),
        "pre_ln": "1" if cfg["pre_ln"] else "0",
        "embedding_layer_norm": "1" if cfg["emb_norm"] else "0",
        "pooling": cfg["pooling"],
        "layer_norm_eps": repr(float(cfg["eps"])),
        "label_smoothing": repr(float(cfg["label_smoothing"])),
    }


def make_inputs(cfg, rng):
    B, T = cfg["B"], cfg["T"]
    assert len(LENGTHS) == B and max(LENGTHS) <= T
    ids = rng.integers(0, cfg["V"], size=(B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.int64)
    segments = np.zeros((B, T), dtype=np.int64)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
        if cfg["S"] > 0:
            segments[b, n // 2:n] = 1
    labels = rng.integers(0, cfg["C"], size=(B,), dtype=np.int64)
    return ids, mask, segments, labels


def to_np(t):
    return t.detach().cpu().contiguous().numpy()


def generate(name, cfg, outdir, rng):
    model = build_model(cfg).float()
    randomize_(model)
    model.train()  # dropout is 0; train mode keeps the fused inference path off

    ids, mask, segments, labels = make_inputs(cfg, rng)
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
    t_seg, t_lab = torch.from_numpy(segments), torch.from_numpy(labels)

    logits, e = model(t_ids, t_mask, t_seg, retain_embedding_grad=True)
    loss = F.cross_entropy(logits, t_lab, label_smoothing=cfg["label_smoothing"])
    loss.backward()

    assert math.isfinite(loss.item()), "%s: loss is not finite" % name
    ge = to_np(e.grad)
    pad = mask == 0
    assert pad.any()
    # Padded keys are masked and pooling ignores them, so nothing reaches them.
    assert np.all(ge[pad] == 0.0), "%s: non-zero grad at padded positions" % name
    assert np.any(ge[~pad] != 0.0), "%s: embedding grad is all zero" % name

    meta = metadata_for(cfg)
    weights = [(k, to_np(v).astype(np.float32)) for k, v in model.state_dict().items()]
    io = [
        ("input.ids", ids),
        ("input.mask", mask),
        ("input.segments", segments),
        ("input.labels", labels),
        ("output.logits", to_np(logits).astype(np.float32)),
        ("output.loss", np.array([loss.item()], dtype=np.float32)),
        ("grad.input_embeddings", ge.astype(np.float32)),
    ]
    for pname, p in model.named_parameters():
        assert p.grad is not None, "%s: no grad for %s" % (name, pname)
        g = to_np(p.grad).astype(np.float32)
        assert np.all(np.isfinite(g)), "%s: non-finite grad for %s" % (name, pname)
        io.append(("grad." + pname, g))

    files = []
    for suffix, tensors in (("weights", weights), ("io", io)):
        path = os.path.join(outdir, "%s.%s.safetensors" % (name, suffix))
        write_safetensors(path, tensors, meta)
        files.append((path, tensors, meta))
    files += generate_training(name, cfg, outdir, weights, (ids, mask, segments, labels))
    return files, loss.item()


def generate_training(name, cfg, outdir, weights, inputs):
    """TRAIN["steps"] AdamW steps in float64 from the fixture's weights on its batch."""
    model = build_model(cfg).double()
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in weights})
    model.train()
    ids, mask, segments, labels = (torch.from_numpy(a) for a in inputs)
    opt = torch.optim.AdamW(model.parameters(), lr=TRAIN["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=TRAIN["weight_decay"])
    warmup, total = TRAIN["warmup"], TRAIN["total"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))

    def loss_now():
        logits, _ = model(ids, mask, segments)
        return F.cross_entropy(logits, labels, label_smoothing=cfg["label_smoothing"])

    losses, norms = [], []
    for _ in range(TRAIN["steps"]):
        opt.zero_grad()
        loss = loss_now()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["clip"])))
        opt.step()
        sched.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(loss_now().item())
    assert max(norms) > TRAIN["clip"], "%s: clipping never acts; the run would not test it" % name
    meta = metadata_for(cfg)
    meta.update({"train_" + k: repr(v) for k, v in TRAIN.items()})
    init = [(k, v.astype(np.float64)) for k, v in weights]
    run = [("train.loss", np.array(losses, dtype=np.float64)),
           ("train.grad_norm", np.array(norms, dtype=np.float64))]
    run += [("train.final." + k, to_np(v)) for k, v in model.state_dict().items()]
    files = []
    for suffix, tensors in (("train_init", init), ("train", run)):
        path = os.path.join(outdir, "%s.%s.safetensors" % (name, suffix))
        write_safetensors(path, tensors, meta)
        files.append((path, tensors, meta))
    return files


def verify(path, tensors, meta):
    got, got_meta = read_safetensors(path)
    assert got_meta == meta, "%s: metadata mismatch" % path
    assert list(got.keys()) == [n for n, _ in tensors], "%s: names mismatch" % path
    for n, arr in tensors:
        g = got[n]
        assert g.shape == arr.shape, "%s: shape mismatch for %s" % (path, n)
        assert g.dtype == arr.dtype, "%s: dtype mismatch for %s" % (path, n)
        assert np.array_equal(g, arr), "%s: value mismatch for %s" % (path, n)
    return len(got)


def main(argv):
    if len(argv) != 2:
        print("usage: %s OUTDIR" % os.path.basename(argv[0]), file=sys.stderr)
        return 2
    if torch is None:
        print("make_nn_fixtures: PyTorch (python3-torch) not installed, skipping",
              file=sys.stderr)
        return SKIP_RC
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)

    t0 = time.time()
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    rng = np.random.default_rng(1234)

    all_files = []
    for name in ("postln", "preln"):
        files, loss = generate(name, CONFIGS[name], outdir, rng)
        all_files.extend((name, loss) + f for f in files)

    for name, loss, path, tensors, meta in all_files:
        n = verify(path, tensors, meta)
        print("%s: %d tensors, %d bytes, loss=%.6f" %
              (path, n, os.path.getsize(path), loss))
    print("make_nn_fixtures: done in %.2fs" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
