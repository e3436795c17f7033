#!/usr/bin/env python3
"""Dice of a student on the four held-out IXI heads smoothed by isotropic Gaussians.

Usage: scripts/evaluate-smoothed.py [MODEL] [SIGMAS_MM]

MODEL: a student model file (default: the shipped student). SIGMAS_MM: comma
list of Gaussian sigmas in mm (default 0,2,3,4). Needs the Python module built
in build/python (KDBET_PYTHON_DIR overrides), numpy and scipy (Debian's
python3-numpy, python3-scipy). Prints one line per sigma: the four Dice values
and their mean. The smoothing stands in for templates, low-resolution and
motion-blurred scans, which the IXI heads are not.
"""
import os
import sys

import numpy as np
from scipy.ndimage import gaussian_filter

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get('KDBET_PYTHON_DIR', os.path.join(here, '..', 'build', 'python')))
import kdbet  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else ''
sigmas = [float(s) for s in (sys.argv[2] if len(sys.argv) > 2 else '0,2,3,4').split(',')]
data = os.environ.get('KDBET_SHARED_DATA', os.path.join(here, '..', '..', 'shared', 'data'))
subjects = ['IXI012-HH-1211', 'IXI013-HH-1212', 'IXI014-HH-1236', 'IXI015-HH-1258']
extractor = kdbet.Extractor(model=model)
heads = []
for subject in subjects:
    image, spacing, origin, direction = kdbet.read_image(f'{data}/ixi-hh-t1-2mm/t1/{subject}_T1.nii.gz')
    reference = kdbet.read_image(f'{data}/ixi-hh-t1-2mm/brainmask/{subject}_brainmask.nii.gz')[0] >= 0.5
    heads.append((image, spacing, origin, direction, reference))
for sigma in sigmas:
    scores = []
    for image, spacing, origin, direction, reference in heads:
        # Arrays are z, y, x; spacing is x, y, z.
        smoothed = gaussian_filter(image, sigma / np.array(spacing)[::-1]) if sigma > 0 else image
        mask = extractor.extract(smoothed.astype(np.float32), spacing, origin, direction)['mask'] > 0
        scores.append(2.0 * (mask & reference).sum() / (mask.sum() + reference.sum()))
    print(f'sigma {sigma:g} mm: ' + ' '.join(f'{d:.4f}' for d in scores) + f'  mean {np.mean(scores):.4f}', flush=True)
