"""Our own transcription of C3S3's and M&N's loss code, run once with Debian's python3-torch (1.13) to produce the
fixtures c3s3.json and mn.json that tests/SemiSeg.Tests/Methods/C3s3MnFidelityTests.cs compares SemiSeg against (1e-5).

Transcribed (not copied) from, read on 2026-12-01:
- Y-TARL/C3S3 train_LA.py @ 983bdf5 (one iteration's v_loss and r_loss: CE and foreground dice_loss of both views,
  alpha-weighted selection, (CE+Dice)/2 supervised loss, cosine_similarity_loss(v_outputs1, v_outputs2) along dim=-1,
  sharpening (T 0.1) of the good student's unlabeled softmax, softmax_mse_loss summed and divided by b*c*w*h*d,
  get_current_consistency_weight(iter_num // 150) = 0.1*sigmoid_rampup(., 40), four ContrastiveLoss terms added to both
  losses); utils/ContrastiveLoss.py @ 47ee329 (ContrastiveLoss.forward, sample_num unused); utils/losses.py and
  utils/ramps.py @ dc97e48.
- pakheiyeung/M-N train.py and losses.py @ 3f7687c: DiceLoss(normalization='softmax') (per-channel Dice over
  (C, N*spatial), 2*intersect / denominator.clamp(min=1e-6), 1 - mean) + nn.KLDivLoss(reduction='mean')(log_softmax(pred), y).
The networks are replaced by fixed logits and projections (inputs of the fixture, on a 1/32 grid so exact in float32),
in the reference's (B, C, W, H, D) layout, so only the methods' own arithmetic is compared. The expected values are
computed in float64: they are the formulas' values, free of float32 rounding (the ODCL is ~10^2 here, where float32's
own rounding approaches 1e-5).

Run: /usr/bin/python3 reference_c3s3_mn.py  (writes c3s3.json and mn.json next to this file)
"""
import json, os
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_losses import flat, sigmoid_rampup  # the fixtures' float format and utils/ramps.py, shared

HERE = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(19)


def randn(*shape):  # N(0, 4) on a 1/32 grid: exact in float32 and short in JSON
    return torch.round(torch.randn(*shape, generator=gen) * 64) / 32


# ---------------------------------------------------------------- C3S3
def dice_loss(score, target):  # utils/losses.py dice_loss
    target = target.float()
    smooth = 1e-5
    intersect = torch.sum(score * target)
    y_sum = torch.sum(target * target)
    z_sum = torch.sum(score * score)
    return 1 - (2 * intersect + smooth) / (z_sum + y_sum + smooth)


def cosine_similarity_loss(v1, v2):
    return (1.0 - F.cosine_similarity(v1, v2, dim=-1)).mean()


def contrastive(v_pro, r_pro, v_out, r_out, tau=0.1):  # ContrastiveLoss.forward
    B, C = v_pro.shape[:2]
    nd = v_pro.dim() - 2
    nv = F.normalize(v_pro.permute(0, *range(2, 2 + nd), 1).reshape(-1, C), dim=-1)
    nr = F.normalize(r_pro.permute(0, *range(2, 2 + nd), 1).reshape(-1, C), dim=-1)
    _, vp = torch.softmax(v_out, 1).max(1)
    _, rp = torch.softmax(r_out, 1).max(1)
    v1m, r1m = vp == 1, rp == 1
    inter = (v1m & r1m).view(-1).float()
    union = (v1m | r1m).view(-1).float()
    s = F.cosine_similarity(nv, nr, dim=-1)
    nom1 = torch.exp(inter * s / tau)
    den1 = torch.exp((1 - inter) * s / tau).sum(0) + nom1
    loss1 = -torch.log(nom1 / (den1 + 1e-8)).mean()
    nom2 = torch.exp((1 - union) * s / tau)
    den2 = torch.exp(union * s / tau).sum(0) + nom2
    loss2 = -torch.log(nom2 / (den2 + 1e-8)).mean()
    return loss1 + loss2


def sharpen(P, lbs, T=0.1):
    p = P[lbs:].clone().detach() ** (1 / T)
    return p / p.sum(1, keepdim=True)


def c3s3_iteration(v1, v2, r1, r2, vp1, vp2, rp1, rp2, label, lbs, alpha, iter_num):
    ce = F.cross_entropy
    v1s, v2s, r1s, r2s = (torch.softmax(t, 1) for t in (v1, v2, r1, r2))
    vce1, vce2 = ce(v1[:lbs], label[:lbs]), ce(v2[:lbs], label[:lbs])
    rce1, rce2 = ce(r1[:lbs], label[:lbs]), ce(r2[:lbs], label[:lbs])
    vd1, vd2 = dice_loss(v1s[:lbs, 1], label[:lbs] == 1), dice_loss(v2s[:lbs, 1], label[:lbs] == 1)
    rd1, rd2 = dice_loss(r1s[:lbs, 1], label[:lbs] == 1), dice_loss(r2s[:lbs, 1], label[:lbs] == 1)
    v_sum = alpha * (vce1 + vce2) + (1 - alpha) * (vd1 + vd2)
    r_sum = alpha * (rce1 + rce2) + (1 - alpha) * (rd1 + rd2)
    good = 0 if v_sum < r_sum else 1
    v_sup = (vce1 + vd1 + vce2 + vd2) / 2
    r_sup = (rce1 + rd1 + rce2 + rd2) / 2
    v_cos, r_cos = cosine_similarity_loss(v1, v2), cosine_similarity_loss(r1, r2)
    w = 0.1 * sigmoid_rampup(iter_num // 150, 40.0)
    if good == 0:
        P1, P2 = sharpen(v1s, lbs), sharpen(v2s, lbs)
        d1, d2 = (r1s[lbs:] - P1) ** 2, (r2s[lbs:] - P2) ** 2
        cons = d1.sum() / d1.numel() + d2.sum() / d2.numel()
        v_loss = v_sup + v_cos
        r_loss = r_sup + r_cos + w * cons
    else:
        P1, P2 = sharpen(r1s, lbs), sharpen(r2s, lbs)
        d1, d2 = (v1s[lbs:] - P1) ** 2, (v2s[lbs:] - P2) ** 2
        cons = d1.sum() / d1.numel() + d2.sum() / d2.numel()
        v_loss = v_sup + v_cos + w * cons
        r_loss = r_sup + r_cos
    odcl = contrastive(vp1, rp1, v1, r1) + contrastive(vp2, rp2, v2, r2) + contrastive(vp1, rp2, v1, r2) + contrastive(vp2, rp1, v2, r1)
    v_loss = v_loss + odcl
    r_loss = r_loss + odcl
    return {"sel_a": float(v_sum), "sel_b": float(r_sum), "a_teaches": 1 if good == 0 else 0, "sup_a": float(v_sup), "sup_b": float(r_sup),
            "cos_a": float(v_cos), "cos_b": float(r_cos), "dcc": float(cons), "odcl": float(odcl), "weight": w,
            "loss_a": float(v_loss), "loss_b": float(r_loss), "loss": float(v_loss + r_loss)}


def c3s3():
    n, lbs, C, D, X, Y, Z = 3, 2, 2, 8, 5, 4, 3
    t = {k: randn(n, C, X, Y, Z) for k in ("v1", "v2", "r1", "r2")}
    t.update({k: randn(n, D, X, Y, Z) for k in ("vp1", "vp2", "rp1", "rp2")})
    label = torch.randint(0, C, (lbs, X, Y, Z), generator=gen)
    alpha, iter_num = 0.8, 3000
    cases = []
    # the second case swaps the networks, so both branches of the competition are checked
    for swap in (False, True):
        a = dict(t) if not swap else {"v1": t["r1"], "v2": t["r2"], "r1": t["v1"], "r2": t["v2"],
                                      "vp1": t["rp1"], "vp2": t["rp2"], "rp1": t["vp1"], "rp2": t["vp2"]}
        a = {k: v.double() for k, v in a.items()}
        out = c3s3_iteration(a["v1"], a["v2"], a["r1"], a["r2"], a["vp1"], a["vp2"], a["rp1"], a["rp2"], label, lbs, alpha, iter_num)
        out["swap"] = swap
        cases.append(out)
    assert cases[0]["a_teaches"] != cases[1]["a_teaches"]
    res = {k: flat(v) for k, v in t.items()}
    res.update({"label": flat(label), "labeled_bs": lbs, "alpha": alpha, "iteration": iter_num, "cases": cases})
    return res


# ---------------------------------------------------------------- M&N
def per_channel_dice(inp, target, epsilon=1e-6):  # losses.compute_per_channel_dice
    C = inp.size(1)
    inp = inp.permute(1, 0, *range(2, inp.dim())).contiguous().view(C, -1)
    target = target.permute(1, 0, *range(2, target.dim())).contiguous().view(C, -1).float()
    intersect = (inp * target).sum(-1)
    denominator = (inp * inp).sum(-1) + (target * target).sum(-1)
    return 2 * (intersect / denominator.clamp(min=epsilon))


def mn():
    n, C, X, Y, Z = 3, 3, 4, 3, 5
    pred = randn(n, C, X, Y, Z)
    other = randn(1, C, X, Y, Z)
    label = torch.randint(0, C, (2, X, Y, Z), generator=gen)
    onehot = F.one_hot(label, C).permute(0, 4, 1, 2, 3).float()
    y = torch.cat((onehot, torch.softmax(other, 1)), 0)  # labels, then the other network's softmax
    y = torch.round(y * 2 ** 20) / 2 ** 20  # exact in float32, so both sides read the same target
    pd, yd = pred.double(), y.double()
    dice = 1.0 - torch.mean(per_channel_dice(torch.softmax(pd, 1), yd))
    kl = nn.KLDivLoss(reduction='mean')(F.log_softmax(pd, dim=1), yd)
    return {"pred": flat(pred), "target": flat(y), "dice": float(dice), "kl": float(kl), "loss": float(dice + kl)}


if __name__ == "__main__":
    for name, fn in (("c3s3", c3s3), ("mn", mn)):
        with open(os.path.join(HERE, name + ".json"), "w") as fh:
            json.dump(fn(), fh, separators=(",", ":"))
        print(name, "written")
