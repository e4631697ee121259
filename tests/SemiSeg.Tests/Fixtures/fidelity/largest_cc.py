"""Fixture for SemiSeg.Geometry.ConnectedComponents.LargestComponent: each foreground class's largest connected
component, computed the way the references compute it, with scikit-image's measure.label (Debian's python3-skimage
0.19.3). Run once: /usr/bin/python3 largest_cc.py  (writes largest_cc.json next to this file).

Transcribed (not copied) from, read on 2026-12-02:
- DeepMed-Lab-ECNU/BCP code/ACDC_BCP_train.py get_ACDC_2DLargestCC (also in M3HL's ACDC script): per slice, per
  class c in 1..3, label(slice == c) with skimage's default (full) connectivity; keep the label that
  np.argmax(np.bincount(labels.flat)[1:]) + 1 names (the first of equally large components); a class without
  pixels stays empty; the classes' kept maps are summed.
- the LA lineage's getLargestCC (UA-MT/BCP code/test_util.py and LA training scripts): the same on a 3D volume,
  one foreground class.
connectivity=1 (faces) is SemiSeg's option fullConnectivity: false; skimage's label(connectivity=1) is its reference.
The maps are coarse random blocks with pixel noise, so every case holds many components and equally large ones.
"""
import json, os
import numpy as np
from skimage.measure import label

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.RandomState(2026)


def blocks(shape, classes, block, noise):
    coarse = rng.randint(0, classes, size=[(s + block - 1) // block for s in shape])
    m = coarse
    for axis in range(len(shape)):
        m = np.repeat(m, block, axis=axis)
    m = m[tuple(slice(0, s) for s in shape)].copy()
    flip = rng.rand(*shape) < noise
    m[flip] = rng.randint(0, classes, size=int(flip.sum()))
    return m.astype(np.uint8)


def largest(volume, classes, connectivity):
    """get_ACDC_2DLargestCC's body for one item (2D slice or 3D volume)."""
    out = np.zeros(volume.shape, dtype=np.int64)
    for c in range(1, classes):
        temp = (volume == c).astype(np.float32)
        labels = label(temp, connectivity=connectivity)
        if labels.max() != 0:
            out += (labels == np.argmax(np.bincount(labels.flat)[1:]) + 1) * c
        else:
            out += temp.astype(np.int64)
    return out.astype(np.uint8)


cases = []
def case(name, maps, classes, per_slice, full):
    if per_slice:
        kept = np.stack([largest(s, classes, maps.ndim - 1 if full else 1) for s in maps])
    else:
        kept = largest(maps, classes, 3 if full else 1)
    d, h, w = maps.shape
    cases.append({"name": name, "d": d, "h": h, "w": w, "classes": classes, "per_slice": per_slice,
                  "full": full, "labels": maps.flatten().tolist(), "expected": kept.flatten().tolist()})


acdc = blocks((5, 33, 29), 4, 3, 0.15)
case("acdc slices, full (BCP's get_ACDC_2DLargestCC)", acdc, 4, True, True)
case("acdc slices, faces", acdc, 4, True, False)
la = blocks((11, 17, 14), 2, 3, 0.2)
case("LA volume, full (getLargestCC)", la, 2, False, True)
case("LA volume, faces", la, 2, False, False)
multi = blocks((7, 12, 13), 3, 2, 0.1)
case("3-class volume, full", multi, 3, False, True)
# equally large components: the first in raster order wins; a class without pixels; a map of one class
tie = np.zeros((2, 6, 7), dtype=np.uint8)
tie[0, 0, 5:7] = 1; tie[0, 3, 0:2] = 1; tie[0, 5, 3] = 2; tie[0, 2, 3] = 2
tie[1, 1, 1] = 1; tie[1, 4, 4] = 1; tie[1, 0, 6] = 3; tie[1, 5, 0] = 3
case("ties and empty classes", tie, 4, True, True)
case("ties, one volume", tie, 4, False, True)
case("one class everywhere", np.ones((1, 4, 5), dtype=np.uint8), 2, True, True)

with open(os.path.join(HERE, "largest_cc.json"), "w") as f:
    json.dump({"generator": "largest_cc.py, scikit-image 0.19.3", "cases": cases}, f, separators=(",", ":"))
print(len(cases), "cases")
