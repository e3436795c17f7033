#!/usr/bin/env python3
"""Skull stripping of a NIfTI file with nibabel and the kdbet Python module.

Usage: PYTHONPATH=build/python python3 examples/KDBrainExtractionNibabel.py HEAD.nii.gz BRAIN.nii.gz [MASK.nii.gz]
"""
import sys

import nibabel

import kdbet


def main(arguments):
    if len(arguments) not in (2, 3):
        sys.exit(__doc__)
    head = nibabel.load(arguments[0])
    extractor = kdbet.Extractor()  # the shipped student model, loaded once
    try:
        result = extractor.extract(head)
    except kdbet.ExtractionError as error:
        sys.exit(f"error: {error}")
    nibabel.save(result["brain"], arguments[1])
    if len(arguments) == 3:
        nibabel.save(result["mask"], arguments[2])
    zooms = head.header.get_zooms()[:3]
    millilitres = result["mask"].get_fdata().sum() * zooms[0] * zooms[1] * zooms[2] / 1000
    print(f"brain volume: {millilitres:.1f} ml (device {extractor.student.device})")


if __name__ == "__main__":
    main(sys.argv[1:])
