#!/usr/bin/env python3
"""Reference runs of PGD (L2 per sequence, Linf per token) and FreeLB in PyTorch.

Usage: make_perturb_fixtures.py OUTDIR

Writes OUTDIR/perturb.weights.safetensors (a model state_dict, same layout as
make_nn_fixtures.py) and OUTDIR/perturb.io.safetensors: inputs, the fixed start
deltas, the deltas after K steps, the losses at each step, and FreeLB's
accumulated parameter gradients. Exits 77 when PyTorch is missing.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_nn_fixtures as nf  # noqa: E402

import numpy as np  # noqa: E402

if nf.torch is not None:
    import torch
    import torch.nn.functional as F

CFG = dict(nf.CONFIGS["postln"])
STEPS = 3
PGD_L2 = dict(eps=0.5, alpha=0.2)
PGD_LINF = dict(eps=0.05, alpha=0.02)
FREELB = dict(adv_lr=0.1, max_norm=0.6)


def loss_and_grad(model, ids, mask, seg, labels, delta, param_grads=False, scale=1.0):
    d = delta.clone().requires_grad_(True)
    logits, _ = model(ids, mask, seg, delta=d)
    loss = F.cross_entropy(logits, labels)
    if param_grads:
        (loss * scale).backward()
        g = d.grad
    else:
        (g,) = torch.autograd.grad(loss, d)
    return loss.item(), g.detach()


def pgd_l2_sequence(model, ids, mask, seg, labels, delta, eps, alpha):
    m = mask[..., None].to(delta.dtype)
    losses = []
    for _ in range(STEPS):
        loss, g = loss_and_grad(model, ids, mask, seg, labels, delta)
        losses.append(loss)
        gn = g.flatten(1).norm(dim=1).view(-1, 1, 1)
        step = torch.where(gn > 0, g / gn.clamp_min(1e-30), torch.zeros_like(g))
        delta = delta + alpha * step
        n = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = delta * torch.where(n > eps, eps / n, torch.ones_like(n))
        delta = delta * m
    return delta, losses


def pgd_linf_token(model, ids, mask, seg, labels, delta, eps, alpha):
    m = mask[..., None].to(delta.dtype)
    losses = []
    for _ in range(STEPS):
        loss, g = loss_and_grad(model, ids, mask, seg, labels, delta)
        losses.append(loss)
        delta = torch.clamp(delta + alpha * torch.sign(g), -eps, eps) * m
    return delta, losses


def freelb(model, ids, mask, seg, labels, delta, adv_lr, max_norm):
    """K ascent steps; each backward accumulates parameter gradients of loss / K."""
    model.zero_grad()
    losses = []
    for k in range(STEPS):
        loss, g = loss_and_grad(model, ids, mask, seg, labels, delta,
                                param_grads=True, scale=1.0 / STEPS)
        losses.append(loss)
        if k == STEPS - 1:
            break
        denorm = g.flatten(1).norm(dim=1).view(-1, 1, 1).clamp(min=1e-8)
        delta = delta + adv_lr * g / denorm
        n = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        exceed = (n > max_norm).to(delta.dtype)
        delta = delta * (max_norm / n * exceed + (1 - exceed))
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return delta, losses, grads


def main(argv):
    if len(argv) != 2:
        print("usage: %s OUTDIR" % os.path.basename(argv[0]), file=sys.stderr)
        return 2
    if nf.torch is None:
        print("make_perturb_fixtures: PyTorch (python3-torch) not installed, skipping",
              file=sys.stderr)
        return nf.SKIP_RC
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(4321)
    torch.set_num_threads(1)
    rng = np.random.default_rng(4321)

    model = nf.build_model(CFG).float()
    nf.randomize_(model)
    model.train()
    ids, mask, seg, labels = nf.make_inputs(CFG, rng)
    t_ids, t_mask, t_seg, t_lab = (torch.from_numpy(a) for a in (ids, mask, seg, labels))
    B, T, D = CFG["B"], CFG["T"], CFG["D"]
    m = t_mask[..., None].float()

    # Fixed starts, zero at padding: an L2 start of norm 0.3 per sequence, a Linf start inside the box.
    start_l2 = torch.randn(B, T, D) * m
    start_l2 = start_l2 / start_l2.flatten(1).norm(dim=1).view(-1, 1, 1) * 0.3
    start_linf = (torch.rand(B, T, D) * 2 - 1) * PGD_LINF["eps"] * m
    start_freelb = (torch.rand(B, T, D) * 2 - 1) * m * 0.1 / torch.sqrt(
        t_mask.sum(1).float() * D).view(-1, 1, 1)

    d_l2, losses_l2 = pgd_l2_sequence(model, t_ids, t_mask, t_seg, t_lab, start_l2, **PGD_L2)
    d_linf, losses_linf = pgd_linf_token(model, t_ids, t_mask, t_seg, t_lab, start_linf, **PGD_LINF)
    d_free, losses_free, grads = freelb(model, t_ids, t_mask, t_seg, t_lab, start_freelb, **FREELB)

    for name, d in (("l2", d_l2), ("linf", d_linf), ("freelb", d_free)):
        assert torch.all(d[t_mask == 0] == 0), name
        assert torch.isfinite(d).all(), name
    assert (d_l2.flatten(1).norm(dim=1) <= PGD_L2["eps"] * (1 + 1e-6)).all()

    f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    meta = nf.metadata_for(CFG)
    meta.update({"steps": str(STEPS),
                 "pgd_l2_eps": repr(PGD_L2["eps"]), "pgd_l2_alpha": repr(PGD_L2["alpha"]),
                 "pgd_linf_eps": repr(PGD_LINF["eps"]), "pgd_linf_alpha": repr(PGD_LINF["alpha"]),
                 "freelb_adv_lr": repr(FREELB["adv_lr"]), "freelb_max_norm": repr(FREELB["max_norm"])})
    weights = [(k, nf.to_np(v).astype(np.float32)) for k, v in model.state_dict().items()]
    io = [("input.ids", ids), ("input.mask", mask), ("input.segments", seg), ("input.labels", labels),
          ("pgd_l2.start", f32(start_l2)), ("pgd_l2.delta", f32(d_l2)),
          ("pgd_l2.losses", np.array(losses_l2, dtype=np.float32)),
          ("pgd_linf.start", f32(start_linf)), ("pgd_linf.delta", f32(d_linf)),
          ("pgd_linf.losses", np.array(losses_linf, dtype=np.float32)),
          ("freelb.start", f32(start_freelb)), ("freelb.delta", f32(d_free)),
          ("freelb.losses", np.array(losses_free, dtype=np.float32))]
    io += [("freelb.grad." + k, f32(v)) for k, v in grads.items()]
    for suffix, tensors in (("weights", weights), ("io", io)):
        path = os.path.join(outdir, "perturb.%s.safetensors" % suffix)
        nf.write_safetensors(path, tensors, meta)
        nf.verify(path, tensors, meta)
        print("%s: %d tensors" % (path, len(tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
