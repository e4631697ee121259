"""Small NIfTI-1 files written by nibabel (Debian's python3-nibabel), for tests/SemiSeg.Tests/Data/NiftiNibabelTests.cs:
SemiSeg must read what nibabel wrote as nibabel reads it back (img.affine, get_fdata() with scl_slope/scl_inter
applied, header codes).

Run once: /usr/bin/python3 make_nibabel_fixtures.py   (writes *.nii / *.nii.gz and nibabel_expected.json here)
The other direction, files SemiSeg wrote (e.g. `semiseg predict` masks of these inputs):
     /usr/bin/python3 make_nibabel_fixtures.py check INPUT.nii.gz SEMISEG_OUTPUT.nii.gz
  prints nibabel's view of SemiSeg's file: same affine as the input (max |difference|), codes, dtype, shape.

Cases (each 4x3x2 voxels, x fastest in the file, as SemiSeg stores volumes):
- sform_float32: float32, an oblique sform (code 1, scanner) and qform code 0
- qform_int16: int16, qform only (code 1, a rotation about z, qfac -1), sform code 0
- sform_over_qform_uint16.nii: uint16 uncompressed, sform (code 2, aligned) differing from the qform (code 1):
  the sform wins, as nibabel's img.affine and the NIfTI-1 standard say
- scaled_uint8: uint8 with scl_slope 0.5, scl_inter -3 (the stored bytes are not the values)
- float64, int32: other data types
- label_uint8: a label map 0..3, as nibabel writes segmentations
"""
import json, os
import numpy as np
import nibabel as nib

HERE = os.path.dirname(os.path.abspath(__file__))
shape = (4, 3, 2)
rng = np.random.default_rng(23)


def rot_z(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def save(name, img):
    nib.save(img, os.path.join(HERE, name))
    back = nib.load(os.path.join(HERE, name))
    h = back.header
    data = back.get_fdata(dtype=np.float64)
    return {
        'file': name,
        'shape_xyz': list(back.shape),
        'dtype': str(back.get_data_dtype()),
        'affine': back.affine.astype(float).flatten().tolist(),   # row-major 4x4
        'sform_code': int(h['sform_code']), 'qform_code': int(h['qform_code']),
        'zooms': [float(z) for z in h.get_zooms()],
        'values_x_fastest': data.flatten(order='F').tolist(),
        'stored_x_fastest': np.asanyarray(back.dataobj.get_unscaled()).astype(float).flatten(order='F').tolist(),
    }


import sys
if len(sys.argv) == 4 and sys.argv[1] == 'check':
    a, b = nib.load(sys.argv[2]), nib.load(sys.argv[3])
    d = float(np.abs(a.affine - b.affine).max())
    print(f'{os.path.basename(sys.argv[3])}: shape {b.shape} (input {a.shape}), dtype {b.get_data_dtype()}, '
          f'sform/qform codes {int(b.header["sform_code"])}/{int(b.header["qform_code"])}, '
          f'max |affine - input affine| = {d:.3g}, labels {sorted(set(np.unique(np.asanyarray(b.dataobj)).tolist()))}')
    sys.exit(0 if d < 1e-4 and a.shape == b.shape else 1)

cases = []
# 1: oblique sform, no qform
aff = np.eye(4)
aff[:3, :3] = rot_z(30) @ np.diag([0.8, 0.9, 2.5])
aff[:3, 3] = [-12.5, 40.0, 7.25]
img = nib.Nifti1Image(rng.normal(size=shape).astype(np.float32), aff)
img.set_sform(aff, code=1)
img.set_qform(None, code=0)
cases.append(save('sform_float32.nii.gz', img))

# 2: qform only, rotation about z with a left-handed (qfac -1) third axis
qaff = np.eye(4)
qaff[:3, :3] = rot_z(-90) @ np.diag([1.5, 1.25, -3.0])
qaff[:3, 3] = [5.0, -6.0, 70.0]
img = nib.Nifti1Image(rng.integers(-300, 300, size=shape).astype(np.int16), None)
img.set_qform(qaff, code=1)
img.set_sform(None, code=0)
cases.append(save('qform_int16.nii.gz', img))

# 3: sform and a different qform: the sform wins
saff = np.diag([0.7, 0.7, 5.0, 1.0]); saff[:3, 3] = [1, 2, 3]
img = nib.Nifti1Image(rng.integers(0, 4000, size=shape).astype(np.uint16), None)
img.set_qform(qaff, code=1)
img.set_sform(saff, code=2)
cases.append(save('sform_over_qform_uint16.nii', img))

# 4: scaled uint8
img = nib.Nifti1Image(rng.integers(0, 256, size=shape).astype(np.uint8), np.diag([2.0, 2.0, 4.0, 1.0]))
img.header.set_slope_inter(0.5, -3.0)
cases.append(save('scaled_uint8.nii.gz', img))

# 5, 6: other data types
cases.append(save('float64.nii.gz', nib.Nifti1Image(rng.normal(size=shape) * 1000, np.diag([1.0, 1.0, 1.0, 1.0]))))
cases.append(save('int32.nii.gz', nib.Nifti1Image(rng.integers(-100000, 100000, size=shape).astype(np.int32), np.diag([0.5, 0.5, 0.5, 1.0]))))

# 7: a label map
lab = nib.Nifti1Image(rng.integers(0, 4, size=shape).astype(np.uint8), aff)
lab.header.set_slope_inter(1.0, 0.0)
cases.append(save('label_uint8.nii.gz', lab))

with open(os.path.join(HERE, 'nibabel_expected.json'), 'w') as f:
    json.dump({'nibabel': nib.__version__, 'cases': cases}, f, indent=1)
print(f'nibabel {nib.__version__}: wrote {len(cases)} files')
