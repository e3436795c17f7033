#!/usr/bin/env python3
"""Which brain-mask rule for whole-head label maps matches the IXI masks' definition?

The IXI masks (DLMUSE, holes filled) are a smooth envelope at the brain's outer
surface: sulcal CSF inside, the CSF between brain and skull outside. A
whole-head label map (FreeSurfer codes, 24 = all CSF) has no such label, so the
rule is: the brain labels, closed by a ball of radius R mm, within the brain
labels or CSF, largest component, holes filled (KDBrainExtractionWholeHeadLabels).

R decides how far the envelope bridges sulci and fissures; the CSF layer over
the convexity stays outside for any R (a closing fills concavities only). The
measure is geometric, free of intensities and of any model: the surface area of
a mask over its volume^(2/3) on the 2 mm grid (a gyral mask has a large surface,
an envelope a small one), for the IXI masks and for each R (the 1 mm candidate
averaged onto 2 mm blocks, >= 0.5), with the candidates' volumes.

Usage: scripts/measure-label-mask-definition.py [--radii 0,1,2,3,4,5,6,8] [--ixi N] LABEL_MAP...
Needs numpy, scipy and nibabel (Debian: python3-numpy, python3-scipy, python3-nibabel).
"""
import argparse
import glob
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

SHARED = os.environ.get("KDBET_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def candidate_mask(labels, radius):
    brain = (labels > 0) & (labels < 500) & (labels != 24)
    mask = brain
    if radius > 0:
        dilated = ndimage.distance_transform_edt(~brain) <= radius
        closed = ndimage.distance_transform_edt(dilated) > radius
        mask = closed & (brain | (labels == 24))
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, components, range(1, count + 1))
        mask = components == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


def to_2mm_mean(mask):
    """The fraction of each 2 mm block (2x2x2 voxels of a 1 mm mask) that is brain."""
    shape = [s // 2 * 2 for s in mask.shape]
    blocks = mask[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    return blocks.reshape(shape[0] // 2, 2, shape[1] // 2, 2, shape[2] // 2, 2).mean(axis=(1, 3, 5))


def to_2mm(mask):
    return to_2mm_mean(mask) >= 0.5


def surface_quotient(mask, spacing):
    faces = sum(np.count_nonzero(np.diff(mask.astype(np.int8), axis=axis)) for axis in range(3))
    return faces * spacing * spacing / (mask.sum() * spacing**3) ** (2.0 / 3.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("label_maps", nargs="+")
    parser.add_argument("--radii", default="0,1,2,3,4,5,6,8")
    parser.add_argument("--ixi", type=int, default=40, help="IXI masks to measure (first N by name)")
    args = parser.parse_args()
    radii = [float(r) for r in args.radii.split(",")]
    ixi = sorted(glob.glob(os.path.join(SHARED, "ixi-hh-t1-2mm", "brainmask", "*_brainmask.nii.gz")))[: args.ixi]
    quotients = [surface_quotient(np.asarray(nib.load(f).dataobj) > 0, 2.0) for f in ixi]
    print(f"IXI masks (n = {len(quotients)}): surface / volume^(2/3) mean {np.mean(quotients):.3f}, "
          f"SD {np.std(quotients):.3f}, range {np.min(quotients):.3f}-{np.max(quotients):.3f}")
    print("| map | " + " | ".join(f"R = {r:g} mm" for r in radii) + " |")
    print("|---|" + "---|" * len(radii))
    table = []
    for path in args.label_maps:
        nifti = nib.load(path)
        labels = np.asarray(nifti.dataobj).astype(np.int32)
        voxel_ml = float(np.prod(nifti.header.get_zooms()[:3])) / 1000.0
        row = []
        for r in radii:
            mask = candidate_mask(labels, r)
            row.append((surface_quotient(to_2mm(mask), 2.0), mask.sum() * voxel_ml))
        table.append(row)
        name = os.path.basename(path).split(".")[0]
        print(f"| {name} | " + " | ".join(f"{q:.2f}, {v:.0f} ml" for q, v in row) + " |", flush=True)
    means = np.mean(np.array(table), axis=0)
    print("| mean | " + " | ".join(f"{q:.2f}, {v:.0f} ml" for q, v in means) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
