"""Our own transcription of the meta-label contrastive loss of Peng et al. (NeurIPS 2021), run once with Debian's
python3-torch (1.13) to produce meta_contrast.json, which tests/SemiSeg.Tests/Methods/MetaLabelContrastTests.cs
compares SemiSeg against (to 1e-5). Same pattern as reference_losses.py.

Transcribed (not copied) from jizongFox/Self-paced-Contrastive-Learning @ ce7e980, read on 2026-12-01:
- contrastyou/losses/contrast_loss2.py: exp_sim_temperature, SupConLoss1._forward (exclude_other_pos=False) and
  SelfPacedSupConLoss._forward / _selfpaced_weighted_loss (the loss of the published ACDC runs,
  semi_seg/scripts/run_self_paced_acdc run_multi_selfpaced).
- contrastyou/utils weighted_average_iter and semi_seg/epochers/comparable.py _regularization: the kinds' losses
  combined with the importances (1, 0.1, 0.1 for partition, patient, cycle: the first published setting).
- semi_seg/epochers/helper.py label generators: partition / patient (LabelEncoder) and ACDC cycle (0 for "00").
The projected features are inputs (fixed, L2-normalised, float32), so only the loss arithmetic is compared. The
expected values are computed in float64 from those float32 inputs.

Run: /usr/bin/python3 meta_contrast_losses.py  (writes meta_contrast.json next to this file)
"""
import json, os
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(19)


def flat(t):
    if t.is_floating_point():
        return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.detach().float().flatten().tolist()]}
    return {"shape": list(t.shape), "data": [int(v) for v in t.flatten().tolist()]}


def exp_sim_temperature(proj_feat1, proj_feat2, t):
    projections = torch.cat([proj_feat1, proj_feat2], dim=0)
    sim_logits = torch.mm(projections, projections.t().contiguous()) / t
    max_value = sim_logits.max().detach()
    sim_logits = sim_logits - max_value
    return torch.exp(sim_logits), sim_logits


def masks(target, batch_size):
    mask = torch.eq(target[..., None], target[None, ...])
    pos_mask = (mask == True).float()
    neg_mask = (mask == False).float()
    unselect_diagonal = 1 - torch.eye(batch_size * 2, dtype=pos_mask.dtype)
    return pos_mask.repeat(2, 2) * unselect_diagonal, neg_mask.repeat(2, 2) * unselect_diagonal


def log_pos_div_sum_pos_neg(proj_feat1, proj_feat2, target, t):
    batch_size = len(proj_feat1)
    pos_mask, neg_mask = masks(target, batch_size)
    sim_exp, sim_logits = exp_sim_temperature(proj_feat1, proj_feat2, t)
    pos_sum = (sim_exp * pos_mask).sum(1, keepdim=True).repeat(1, batch_size * 2)
    neg_sum = (sim_exp * neg_mask).sum(1, keepdim=True).repeat(1, batch_size * 2)
    return sim_logits - torch.log(pos_sum + neg_sum + 1e-16), pos_mask


def supcon(proj_feat1, proj_feat2, target, t):
    # SupConLoss1._forward, exclude_other_pos=False
    ll, pos_mask = log_pos_div_sum_pos_neg(proj_feat1, proj_feat2, target, t)
    pos_count = pos_mask.sum(1)
    loss = (ll * pos_mask).sum(1) / pos_count
    return -loss.mean()


def selfpaced_supcon(proj_feat1, proj_feat2, target, t, gamma, weight_update):
    # SelfPacedSupConLoss._forward with _selfpaced_weighted_loss
    ll, pos_mask = log_pos_div_sum_pos_neg(proj_feat1, proj_feat2, target, t)
    l_i_j = -ll.detach()
    if weight_update == "hard":
        weight = (l_i_j <= gamma).to(ll.dtype)
    else:
        weight = torch.max(1 - 1 / gamma * l_i_j, torch.zeros_like(l_i_j))
    ll = ll * weight
    pos_count = pos_mask.sum(1)
    loss = (ll * pos_mask).sum(1) / pos_count
    return -loss.mean(), (weight * pos_mask).sum() / pos_mask.sum()


def weighted_average_iter(a_list, weight_list):
    sum_weight = sum(weight_list) + 1e-16
    return sum(x * y for x, y in zip(a_list, weight_list)) / sum_weight


def encode(values):  # LabelEncoder().fit(v).transform(v): sorted unique values -> 0..K-1
    classes = sorted(set(values))
    return torch.tensor([classes.index(v) for v in values])


# 4 scans x 3 partitions, one slice each: the reference's ContrastBatchSampler batch (m = 4)
scans = [("patient001", "00"), ("patient001", "01"), ("patient007", "00"), ("patient042", "01")]
slices = [(p, e, part) for (p, e) in scans for part in ("0", "1", "2")]
targets = {
    "partition": encode([s[2] for s in slices]),
    "patient": encode([s[0] for s in slices]),
    "cycle": torch.tensor([0 if s[1] == "00" else 1 for s in slices]),
}
n, d, T = len(slices), 16, 0.07
feats = {}
for kind in targets:
    f1 = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1).float()
    # the second view: a perturbation of the first, so that similarities (and the pair losses) spread out
    f2 = torch.nn.functional.normalize(f1 + 0.7 * torch.randn(n, d, generator=gen), dim=1).float()
    feats[kind] = (f1, f2)

settings = {"partition": (14.0, "soft"), "patient": (12.0, "soft"), "cycle": (7.0, "hard")}
importance = {"partition": 1.0, "patient": 0.1, "cycle": 0.1}
out = {"temperature": T, "kinds": list(targets.keys())}
plain_losses, sp_losses = [], []
for kind, target in targets.items():
    f1, f2 = feats[kind]
    g, mode = settings[kind]
    a, b = f1.double(), f2.double()
    plain = supcon(a, b, target, T)
    sp, admitted = selfpaced_supcon(a, b, target, T, g, mode)
    plain_losses.append(plain); sp_losses.append(sp)
    out[kind] = {
        "f1": flat(f1), "f2": flat(f2), "target": flat(target), "gamma": g, "mode": mode, "importance": importance[kind],
        "supcon": float(plain), "selfpaced": float(sp), "admitted_weight_mean": float(admitted),
    }
w = [importance[k] for k in targets]
out["combined_supcon"] = float(weighted_average_iter(plain_losses, w))
out["combined_selfpaced"] = float(weighted_average_iter(sp_losses, w))
with open(os.path.join(HERE, "meta_contrast.json"), "w") as fh:
    json.dump(out, fh, indent=1)
print({k: (out[k]["supcon"], out[k]["selfpaced"], out[k]["admitted_weight_mean"]) for k in targets}, out["combined_supcon"], out["combined_selfpaced"])
