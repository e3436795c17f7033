#!/usr/bin/env python3
"""How much Dice does a flawless 2 mm prediction lose on a 1 mm head?

For each whole-head label map (1 mm) and each brain-mask rule (the closing radius R of
KDBrainExtractionWholeHeadLabels; R = 0: the brain labels alone, holes filled, a gyral mask),
the exact 1 mm mask is averaged onto 2 mm blocks (a perfect 2 mm probability, partial volume
included), interpolated back onto the 1 mm voxels (linear, as the filters resample the
probability) and thresholded at 0.5; the Dice against the exact mask is the ceiling of any
method that decides the brain on the 2 mm grid alone (issue 27).

Usage: scripts/measure-resolution-ceiling.py [--radii 0,3,5] LABEL_MAP...
Needs numpy, scipy and nibabel (Debian: python3-numpy, python3-scipy, python3-nibabel).
"""
import argparse
import importlib.util
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

_spec = importlib.util.spec_from_file_location(
    "mask_rule", os.path.join(os.path.dirname(os.path.abspath(__file__)), "measure-label-mask-definition.py"))
mask_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mask_rule)


def back_to_1mm(probability_2mm, shape):
    """Linear interpolation onto the 1 mm voxels: 1 mm voxel i lies at 2 mm coordinate (i - 0.5) / 2."""
    axes = np.meshgrid(*[(np.arange(n) - 0.5) / 2.0 for n in shape], indexing="ij")
    return ndimage.map_coordinates(probability_2mm, axes, order=1, mode="nearest")


def dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("label_maps", nargs="+")
    parser.add_argument("--radii", default="0,3,5", help="closing radii (mm) of the mask rule")
    args = parser.parse_args()
    radii = [float(r) for r in args.radii.split(",")]
    print("| map | " + " | ".join(f"R = {r:g} mm: Dice (volume)" for r in radii) + " |")
    print("|---|" + "---|" * len(radii))
    table = []
    for path in args.label_maps:
        nifti = nib.load(path)
        spacing = tuple(float(z) for z in nifti.header.get_zooms()[:3])
        if not np.allclose(spacing, 1.0, atol=1e-3):
            # 2x2x2 blocks of voxels are 2 mm only on a 1 mm map.
            sys.exit(f"{path}: the label map's spacing is {spacing} mm, not 1 mm")
        labels = np.asarray(nifti.dataobj).astype(np.int32)
        labels = labels[tuple(slice(0, n // 2 * 2) for n in labels.shape)]  # whole 2 mm blocks
        row = []
        for r in radii:
            mask = mask_rule.candidate_mask(labels, r)
            probability = mask_rule.to_2mm_mean(mask)
            row.append((dice(back_to_1mm(probability, mask.shape) >= 0.5, mask), mask.sum() / 1000.0))  # 1 mm voxels: ml
        table.append(row)
        name = os.path.basename(path).split(".")[0]
        print(f"| {name} | " + " | ".join(f"{d:.4f} ({v:.0f} ml)" for d, v in row) + " |", flush=True)
    means = np.mean(np.array(table), axis=0)
    print("| mean | " + " | ".join(f"{d:.4f} ({v:.0f} ml)" for d, v in means) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
