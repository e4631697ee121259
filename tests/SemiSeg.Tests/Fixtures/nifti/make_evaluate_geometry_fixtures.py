"""Masks as other toolkits write them, for `semiseg evaluate --predictions` (tests/SemiSeg.Tests/Evaluation/
EvaluateGeometryTests.cs): the same mask stored in another axis order or direction (a matching affine, so the same
mask in world space), masks on a different voxel grid, and a uint8 mask with scl_slope. Written by nibabel (Debian's
python3-nibabel); nibabel also says what SemiSeg must do with each: the reoriented array its own orientation logic
(io_orientation -> ornt_transform -> apply_orientation, as as_closest_canonical uses) gives, whether that lands on the
reference's affine (then the Dice is 1), and the Dice the raw arrays give without reorientation (the issue's bug).

Run once: /usr/bin/python3 make_evaluate_geometry_fixtures.py   (writes eval_*.nii.gz and evaluate_geometry_expected.json here)

Files (reference grid 6x5x4 voxels (x, y, z) of 1.25 x 1.25 x 2.5 mm, origin (-3, 4, 10), an RAS affine):
- eval_image.nii.gz / eval_label.nii.gz: the reference image (float32) and its label map (0..3, no symmetry)
- eval_pred_flipx: the label mirrored along x with the affine mirrored to match (LAS)
- eval_pred_swapxy_flipz: x and y stored in swapped order, z reversed, affine to match (ARI)
- eval_pred_spacing: the label with an x spacing of 1.0 mm instead of 1.25 (a different grid: refused)
- eval_pred_shifted: the label with the origin moved 0.4 voxel along y (a different grid: refused)
- eval_pred_scaled: the label stored as uint8 label*85 with scl_slope 1/85 (bytes 0/85/170/255, values 0..3)
"""
import json, os
import numpy as np
import nibabel as nib
from nibabel import orientations as ornt

HERE = os.path.dirname(os.path.abspath(__file__))
shape = (6, 5, 4)
ref_aff = np.diag([1.25, 1.25, 2.5, 1.0]); ref_aff[:3, 3] = [-3.0, 4.0, 10.0]

lab = np.zeros(shape, np.uint8)
lab[1:4, 1:3, 0:3] = 1       # a block off-centre in x, y and z
lab[4, 0:4, 1] = 2           # a bar at x = 4
lab[0:2, 3:5, 3] = 3         # a corner patch
rng = np.random.default_rng(2323)
img = (rng.normal(size=shape) + lab).astype(np.float32)


def save(name, data, aff, slope=None):
    im = nib.Nifti1Image(data, aff)
    im.set_sform(aff, code=1)
    im.set_qform(aff, code=1)
    if slope is not None:
        im.header.set_slope_inter(slope, 0.0)
    nib.save(im, os.path.join(HERE, name))
    return nib.load(os.path.join(HERE, name))


def flat(a):
    return np.asarray(a).flatten(order='F').tolist()   # x fastest, as SemiSeg stores volumes


def dice(a, b, c):
    a, b = a == c, b == c
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


ref = save('eval_label.nii.gz', lab, ref_aff)
save('eval_image.nii.gz', img, ref_aff)
ref_data = np.round(ref.get_fdata()).astype(np.uint8)

flipx = np.eye(4); flipx[0, 0] = -1; flipx[0, 3] = shape[0] - 1          # voxel i -> 5 - i
swap_flipz = np.zeros((4, 4)); swap_flipz[0, 1] = 1; swap_flipz[1, 0] = 1  # stored (y, x, z): voxel (i, j, k) -> (j, i, 3 - k)
swap_flipz[2, 2] = -1; swap_flipz[2, 3] = shape[2] - 1; swap_flipz[3, 3] = 1
spacing_aff = ref_aff.copy(); spacing_aff[0, 0] = 1.0
shifted_aff = ref_aff.copy(); shifted_aff[1, 3] += 0.4 * 1.25

preds = [
    ('eval_pred_flipx.nii.gz', lab[::-1, :, :], ref_aff @ flipx, None),
    ('eval_pred_swapxy_flipz.nii.gz', lab.transpose(1, 0, 2)[:, :, ::-1], ref_aff @ swap_flipz, None),
    ('eval_pred_spacing.nii.gz', lab, spacing_aff, None),
    ('eval_pred_shifted.nii.gz', lab, shifted_aff, None),
    ('eval_pred_scaled.nii.gz', (lab * 85).astype(np.uint8), ref_aff, 1 / 85),
]
cases = []
for name, data, aff, slope in preds:
    p = save(name, np.ascontiguousarray(data), aff, slope)
    values = p.get_fdata()
    labels = np.round(values).astype(np.uint8)
    transform = ornt.ornt_transform(ornt.io_orientation(p.affine), ornt.io_orientation(ref.affine))
    reoriented = p.as_reoriented(transform)
    re_labels = np.round(reoriented.get_fdata()).astype(np.uint8)
    same_grid = reoriented.shape == ref.shape and bool(np.allclose(reoriented.affine, ref.affine, atol=1e-4))
    cases.append({
        'file': name,
        'shape_xyz': list(p.shape),
        'axcodes': ''.join(nib.aff2axcodes(p.affine)),
        'stored_x_fastest': flat(np.asanyarray(p.dataobj.get_unscaled())),
        # the file's scaling, as nibabel's array proxy applies it (a loaded header shows NaN: nibabel moves it there)
        'scl_slope': float(p.dataobj.slope), 'scl_inter': float(p.dataobj.inter),
        'max_abs_fdata_minus_round': float(np.abs(values - labels).max()),
        'labels_x_fastest': flat(labels),
        'same_grid_after_reorientation': same_grid,
        'reoriented_x_fastest': flat(re_labels) if same_grid else None,
        'dice_after_reorientation': [dice(re_labels, ref_data, c) for c in (1, 2, 3)] if same_grid else None,
        'dice_raw_arrays': [dice(labels, ref_data, c) for c in (1, 2, 3)] if labels.shape == ref_data.shape else None,
    })

with open(os.path.join(HERE, 'evaluate_geometry_expected.json'), 'w') as f:
    json.dump({'nibabel': nib.__version__, 'reference': {'file': 'eval_label.nii.gz', 'shape_xyz': list(shape),
               'axcodes': ''.join(nib.aff2axcodes(ref_aff)), 'labels_x_fastest': flat(ref_data)}, 'predictions': cases}, f, indent=1, allow_nan=False)
print(f'nibabel {nib.__version__}: wrote {len(cases) + 2} files')
for c in cases:
    print(c['file'], c['axcodes'], 'same grid' if c['same_grid_after_reorientation'] else 'different grid',
          'raw Dice', c['dice_raw_arrays'], 'reoriented Dice', c['dice_after_reorientation'], 'fdata-round', c['max_abs_fdata_minus_round'])
