#!/usr/bin/env python3
"""Makes a small BIDS dataset from the shared IXI heads, for trying kdbet bids,
the Slurm array script and the container at the scale of a study:

    scripts/make-bids-study.py --build build --output /tmp/study [--subjects 10]

Each participant has two sessions: ses-1 with the real IXI T1w scan, ses-2 with
a T2w (or, for every third participant, a PDw) painted from the same head's
DLMUSE labels by KDBrainExtractionSynthesizeContrast (no real T2w or PDw with a
brain mask is in the shared data). 2 scans per participant: --subjects 10 gives
20 heads. Derived files go under --output only; ../shared is read, never written.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "ixi-hh-t1-2mm"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, help="the build folder (for KDBrainExtractionSynthesizeContrast)")
    parser.add_argument("--output", required=True, help="the BIDS dataset to make (replaced if it exists)")
    parser.add_argument("--subjects", type=int, default=10, help="participants (2 scans each)")
    parser.add_argument("--data", default=SHARED, help="the IXI folder (t1/, dlmuse/, brainmask/, cases.csv)")
    arguments = parser.parse_args()

    synthesize = os.path.join(arguments.build, "bin", "KDBrainExtractionSynthesizeContrast")
    if not os.access(synthesize, os.X_OK):
        sys.exit(f"{synthesize}: not built (cmake --build {arguments.build})")
    with open(os.path.join(arguments.data, "cases.csv")) as stream:
        subjects = sorted(row["subject"] for row in csv.DictReader(stream))
    if arguments.subjects > len(subjects):
        sys.exit(f"--subjects {arguments.subjects}: only {len(subjects)} IXI heads")
    # Spread over the list: not only the first scanner days.
    step = len(subjects) / arguments.subjects
    chosen = [subjects[int(i * step)] for i in range(arguments.subjects)]

    shutil.rmtree(arguments.output, ignore_errors=True)
    os.makedirs(arguments.output)
    with open(os.path.join(arguments.output, "dataset_description.json"), "w") as stream:
        json.dump({"Name": "IXI heads for kdbet bids (T1w real, T2w/PDw painted)", "BIDSVersion": "1.9.0",
                   "DatasetType": "raw", "License": "CC-BY-SA-3.0 (IXI)"}, stream, indent=2)
    participants = [("participant_id", "source")]
    with tempfile.TemporaryDirectory() as work:
        for index, subject in enumerate(chosen, start=1):
            label = f"{index:02d}"
            t1 = os.path.join(arguments.data, "t1", subject + "_T1.nii.gz")
            labels = os.path.join(arguments.data, "dlmuse", subject + "_T1_DLMUSE.nii.gz")
            mask = os.path.join(arguments.data, "brainmask", subject + "_brainmask.nii.gz")
            subprocess.run([synthesize, t1, labels, mask, os.path.join(work, subject), str(index)], check=True,
                           stdout=subprocess.DEVNULL)
            contrast, painted = ("PDw", "pdw") if index % 3 == 0 else ("T2w", "t2w")
            for session, suffix, source in (("1", "T1w", t1),
                                            ("2", contrast, os.path.join(work, f"{subject}_{painted}.nii.gz"))):
                folder = os.path.join(arguments.output, f"sub-{label}", f"ses-{session}", "anat")
                os.makedirs(folder, exist_ok=True)
                stem = os.path.join(folder, f"sub-{label}_ses-{session}_{suffix}")
                shutil.copyfile(source, stem + ".nii.gz")
                with open(stem + ".json", "w") as stream:
                    json.dump({"Manufacturer": "Philips", "MagneticFieldStrength": 3}, stream)
            participants.append((f"sub-{label}", subject))
            print(f"sub-{label}: {subject} (ses-1 T1w, ses-2 {contrast})")
    with open(os.path.join(arguments.output, "participants.tsv"), "w") as stream:
        stream.writelines("\t".join(row) + "\n" for row in participants)
    print(f"{arguments.output}: {len(chosen)} participants, {2 * len(chosen)} scans")


if __name__ == "__main__":
    main()
