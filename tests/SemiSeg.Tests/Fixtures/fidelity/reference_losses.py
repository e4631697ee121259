"""Our own transcription of two references' loss/step code, run once with Debian's python3-torch (1.13) to produce
the fixtures that tests/SemiSeg.Tests/Methods/FidelityFixtureTests.cs compares SemiSeg against (to 1e-5).

Transcribed (not copied) from, read on 2026-12-01:
- HiLab-git/SSL4MIS code/train_cross_pseudo_supervision_2D.py at 9a74d15 (the loss of one iteration),
  code/utils/losses.py DiceLoss, code/utils/ramps.py sigmoid_rampup.
- chy-upc/ABD code/utils/displacement.py (ABD_I, ABD_R) and code/train_ACDC_Cross_Teaching.py (the loss of one
  iteration): ABD-I on the labeled half, ABD-R on the unlabeled half, both displaced batches through both networks.
- DeepMed-Lab-ECNU/BCP code/ACDC_BCP_train.py mix_loss and the self-training loss, code/utils/losses.py DiceLoss
  with a mask (smooth 1e-10; SemiSeg's 1e-5 stays within the 1e-5 tolerance here).
The networks are replaced by fixed logits (inputs of the fixture), so only the method's own arithmetic is compared.
einops.rearrange 'b (h p1) (w p2) -> b (h w) (p1 p2)' is written out with reshape/permute.

Run: /usr/bin/python3 reference_losses.py  (writes cps.json and abd.json next to this file)
"""
import json, math, os
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(18)


def randn(*shape):  # N(0, 4) on a 1/32 grid: exact in float32 and short in JSON
    return torch.round(torch.randn(*shape, generator=gen) * 64) / 32


def rand(*shape):
    return torch.round(torch.rand(*shape, generator=gen) * 32) / 32


def sigmoid_rampup(current, rampup_length):
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def consistency_weight(consistency, iter_num, rampup=200.0):
    return consistency * sigmoid_rampup(iter_num // 150, rampup)


def dice_loss(score, target, n_classes):
    # SSL4MIS DiceLoss(n_classes)(inputs already softmaxed, target (B,1,H,W)), weight 1 per class, smooth 1e-5
    target = torch.cat([(target == i).float() for i in range(n_classes)], dim=1)
    loss = 0.0
    for i in range(n_classes):
        s, t = score[:, i], target[:, i]
        intersect = torch.sum(s * t)
        y_sum = torch.sum(t * t)
        z_sum = torch.sum(s * s)
        loss += 1 - (2 * intersect + 1e-5) / (z_sum + y_sum + 1e-5)
    return loss / n_classes


ce_loss = torch.nn.CrossEntropyLoss()


def to_patches(x, p):  # 'b (h p1) (w p2) -> b (h w) (p1 p2)'
    b, H, W = x.shape
    return x.reshape(b, H // p, p, W // p, p).permute(0, 1, 3, 2, 4).reshape(b, (H // p) * (W // p), p * p).clone()


def from_patches(x, hs, ws, p):  # 'b (h w) (p1 p2) -> b (h p1) (w p2)'
    b = x.shape[0]
    return x.reshape(b, hs, ws, p, p).permute(0, 1, 3, 2, 4).reshape(b, hs * p, ws * p)


def to_patches_c(x, p):  # 'b c (h p1) (w p2) -> b c (h w) (p1 p2)'
    b, c, H, W = x.shape
    return x.reshape(b, c, H // p, p, W // p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, (H // p) * (W // p), p * p)


def flat(t):
    # float32 values written with 9 significant digits: they read back bit-exactly as float32
    if t.is_floating_point():
        return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.detach().float().flatten().tolist()]}
    return {"shape": list(t.shape), "data": [int(v) for v in t.flatten().tolist()]}


# ---------------------------------------------------------------- CPS (SSL4MIS 2D)
def cps():
    lbs, n, C, H = 2, 4, 4, 8
    o1 = randn(n, C, H, H)
    o2 = randn(n, C, H, H)
    label = torch.randint(0, C, (lbs, H, H), generator=gen)
    iter_num = 4500
    s1, s2 = torch.softmax(o1, 1), torch.softmax(o2, 1)
    w = consistency_weight(0.1, iter_num)
    loss1 = 0.5 * (ce_loss(o1[:lbs], label.long()) + dice_loss(s1[:lbs], label.unsqueeze(1), C))
    loss2 = 0.5 * (ce_loss(o2[:lbs], label.long()) + dice_loss(s2[:lbs], label.unsqueeze(1), C))
    p1 = torch.argmax(s1[lbs:].detach(), dim=1)
    p2 = torch.argmax(s2[lbs:].detach(), dim=1)
    ps1 = ce_loss(o1[lbs:], p2)
    ps2 = ce_loss(o2[lbs:], p1)
    loss = loss1 + w * ps1 + loss2 + w * ps2
    return {"labeled_bs": lbs, "iteration": iter_num, "o1": flat(o1), "o2": flat(o2), "label": flat(label),
            "weight": w, "sup": float(loss1 + loss2), "cps": float(ps1 + ps2), "loss": float(loss)}


# ---------------------------------------------------------------- ABD (cross teaching, ACDC)
def abd():
    lbs, n, C, H, grid, top_num = 2, 4, 4, 8, 4, 4
    p = H // grid
    o1 = randn(n, C, H, H)
    o2 = randn(n, C, H, H)
    x1 = rand(n, 1, H, H)
    x2 = rand(n, 1, H, H)
    y1 = torch.randint(0, C, (lbs, H, H), generator=gen)
    y2 = y1.clone()
    y2[0, :3, :3] = 0  # the reference's strong label differs (cutout sets 0); ABD_I takes both
    apply = [True, False]  # random.random() < 0.5 per labeled image, fixed here
    iter_num = 6000
    s1, s2 = torch.softmax(o1, 1), torch.softmax(o2, 1)
    m1, m2 = torch.max(s1, 1)[0], torch.max(s2, 1)[0]

    # ABD_I (labeled half)
    pc1 = to_patches(m1[:lbs], p).mean(2)
    pc2 = to_patches(m2[:lbs], p).mean(2)
    i1, i2 = to_patches(x1.squeeze(1)[:lbs], p), to_patches(x2.squeeze(1)[:lbs], p)
    l1, l2 = to_patches(y1[:lbs], p), to_patches(y2[:lbs], p)
    e, f = torch.argmax(pc1, 1), torch.argmin(pc1, 1)
    g, h = torch.argmax(pc2, 1), torch.argmin(pc2, 1)
    for i in range(lbs):
        if apply[i]:
            i1[i][e[i]] = i2[i][h[i]]
            i2[i][g[i]] = i1[i][f[i]]
            l1[i][e[i]] = l2[i][h[i]]
            l2[i][g[i]] = l1[i][f[i]]
    xi = from_patches(torch.cat([i1, i2]), grid, grid, p)
    yi = from_patches(torch.cat([l1, l2]), grid, grid, p)

    # ABD_R (unlabeled half), class vectors = softmax of the patch's mean logits
    u1, u2 = o1[lbs:], o2[lbs:]
    qc1 = to_patches(m1[lbs:], p).mean(2)
    qc2 = to_patches(m2[lbs:], p).mean(2)
    r1, r2 = to_patches(x1.squeeze(1)[lbs:], p), to_patches(x2.squeeze(1)[lbs:], p)
    mo1 = to_patches_c(u1, p).mean(3).permute(0, 2, 1)
    mo2 = to_patches_c(u2, p).mean(3).permute(0, 2, 1)
    _, top1 = qc1.topk(top_num, dim=1)
    _, top2 = qc2.topk(top_num, dim=1)
    for i in range(n - lbs):
        kl1, kl2 = torch.empty(top_num), torch.empty(top_num)
        b = torch.argmin(qc1[i]); d = torch.argmin(qc2[i])
        min1, min2 = mo1[i, b, :], mo2[i, d, :]
        t1, t2 = mo1[i, top1[i, :], :], mo2[i, top2[i, :], :]
        for j in range(top_num):
            kl1[j] = F.kl_div(t1[j].softmax(dim=-1).log(), min2.softmax(dim=-1), reduction='sum')
            kl2[j] = F.kl_div(t2[j].softmax(dim=-1).log(), min1.softmax(dim=-1), reduction='sum')
        a_ori = top1[i, torch.argmin(kl1)]
        c_ori = top2[i, torch.argmin(kl2)]
        r1[i][b] = r2[i][c_ori]
        r2[i][d] = r1[i][a_ori]
    xr = from_patches(torch.cat([r1, r2]), grid, grid, p)

    # the networks' outputs on the displaced batches (fixed inputs)
    e1i = randn(2 * lbs, C, H, H)
    e2i = randn(2 * lbs, C, H, H)
    e1r = randn(2 * (n - lbs), C, H, H)
    e2r = randn(2 * (n - lbs), C, H, H)

    # network 1 is supervised by label_batch, network 2 by label_batch_strong (cutout_gray zeroes its box)
    loss1 = 0.5 * (ce_loss(o1[:lbs], y1.long()) + dice_loss(s1[:lbs], y1.unsqueeze(1), C))
    loss2 = 0.5 * (ce_loss(o2[:lbs], y2.long()) + dice_loss(s2[:lbs], y2.unsqueeze(1), C))
    ps1 = dice_loss(s1[lbs:], torch.argmax(s2[lbs:], 1).unsqueeze(1), C)
    ps2 = dice_loss(s2[lbs:], torch.argmax(s1[lbs:], 1).unsqueeze(1), C)
    si1, si2 = torch.softmax(e1i, 1), torch.softmax(e2i, 1)
    loss3 = 0.5 * (ce_loss(e1i, yi.long()) + dice_loss(si1, yi.unsqueeze(1), C)) if iter_num <= 20000 else 0
    loss4 = 0.5 * (ce_loss(e2i, yi.long()) + dice_loss(si2, yi.unsqueeze(1), C)) if iter_num <= 20000 else 0
    sr1, sr2 = torch.softmax(e1r, 1), torch.softmax(e2r, 1)
    ps3 = dice_loss(sr1, torch.argmax(sr2, 1).unsqueeze(1), C)
    ps4 = dice_loss(sr2, torch.argmax(sr1, 1).unsqueeze(1), C)
    w = consistency_weight(0.1, iter_num)
    model1_loss = loss1 + 2 * loss3 + w * (ps1 + ps3)
    model2_loss = loss2 + 2 * loss4 + w * (ps2 + ps4)
    return {"labeled_bs": lbs, "grid": grid, "top_k": top_num, "iteration": iter_num, "apply": apply,
            "o1": flat(o1), "o2": flat(o2), "x1": flat(x1), "x2": flat(x2), "y1": flat(y1), "y2": flat(y2),
            "e1i": flat(e1i), "e2i": flat(e2i), "e1r": flat(e1r), "e2r": flat(e2r),
            "abd_i_images": flat(xi.unsqueeze(1)), "abd_i_labels": flat(yi), "abd_r_images": flat(xr.unsqueeze(1)),
            "weight": w, "sup": float(loss1 + loss2), "abd_i": float(loss3 + loss4), "cps": float(ps1 + ps2),
            "abd_r": float(ps3 + ps4), "loss": float(model1_loss + model2_loss)}


# ---------------------------------------------------------------- BCP (self-training step, ACDC)
def bcp_dice(score, target, mask, n_classes):
    # BCP utils/losses.py DiceLoss.forward(inputs, target (B,1,H,W), mask (B,1,H,W)): _dice_mask_loss per class
    target = torch.cat([(target == i).float() for i in range(n_classes)], dim=1)
    mask = mask.repeat(1, n_classes, 1, 1).float()
    loss = 0.0
    for i in range(n_classes):
        s, t, m = score[:, i], target[:, i], mask[:, i]
        intersect = torch.sum(s * t * m)
        y_sum = torch.sum(t * t * m)
        z_sum = torch.sum(s * s * m)
        loss += 1 - (2 * intersect + 1e-10) / (z_sum + y_sum + 1e-10)
    return loss / n_classes


def mix_loss(output, img_l, patch_l, mask, C, l_weight=1.0, u_weight=0.5, unlab=False):
    CE = torch.nn.CrossEntropyLoss(reduction='none')
    output_soft = F.softmax(output, dim=1)
    image_weight, patch_weight = l_weight, u_weight
    if unlab:
        image_weight, patch_weight = u_weight, l_weight
    patch_mask = 1 - mask
    loss_dice = bcp_dice(output_soft, img_l.unsqueeze(1), mask.unsqueeze(1), C) * image_weight
    loss_dice += bcp_dice(output_soft, patch_l.unsqueeze(1), patch_mask.unsqueeze(1), C) * patch_weight
    loss_ce = image_weight * (CE(output, img_l) * mask).sum() / (mask.sum() + 1e-16)
    loss_ce += patch_weight * (CE(output, patch_l) * patch_mask).sum() / (patch_mask.sum() + 1e-16)
    return loss_dice, loss_ce


def bcp():
    sub, C, H = 2, 4, 12
    out_unl = randn(sub, C, H, H)
    out_l = randn(sub, C, H, H)
    lab_a = torch.randint(0, C, (sub, H, H), generator=gen)
    lab_b = torch.randint(0, C, (sub, H, H), generator=gen)
    plab_a = torch.randint(0, C, (sub, H, H), generator=gen)
    plab_b = torch.randint(0, C, (sub, H, H), generator=gen)
    mask = torch.ones(H, H)
    px = int(H * 2 / 3)
    mask[2:2 + px, 1:1 + px] = 0  # generate_mask's zero box at a fixed place
    loss_mask = mask.unsqueeze(0).repeat(sub, 1, 1)
    unl_dice, unl_ce = mix_loss(out_unl, plab_a, lab_a, loss_mask, C, u_weight=0.5, unlab=True)
    l_dice, l_ce = mix_loss(out_l, lab_b, plab_b, loss_mask, C, u_weight=0.5)
    loss = ((unl_dice + l_dice) + (unl_ce + l_ce)) / 2
    return {"mask": flat(mask), "out_unl": flat(out_unl), "out_l": flat(out_l), "lab_a": flat(lab_a), "lab_b": flat(lab_b),
            "plab_a": flat(plab_a), "plab_b": flat(plab_b), "u_weight": 0.5,
            "dice": float(unl_dice + l_dice), "ce": float(unl_ce + l_ce), "loss": float(loss)}


if __name__ == "__main__":
    for name, fn in (("cps", cps), ("abd", abd), ("bcp", bcp)):
        with open(os.path.join(HERE, name + ".json"), "w") as fh:
            json.dump(fn(), fh, separators=(",", ":"))
        print(name, "written")
