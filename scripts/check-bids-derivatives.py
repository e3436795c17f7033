#!/usr/bin/env python3
"""Checks a kdbet BIDS derivatives dataset against the BIDS 1.9 rules that
apply to it, encoded here because the bids-validator npm releases (1.x) do not
validate derivative files (they report each one as NOT_INCLUDED).

    scripts/check-bids-derivatives.py DERIVATIVES_DIR [--raw BIDS_DIR]

Rules (BIDS 1.9: Common data types and metadata; Derivatives):
- dataset_description.json: Name, BIDSVersion, DatasetType "derivative",
  GeneratedBy (a non-empty list, each with a Name); DatasetLinks naming the
  datasets that BIDS URIs refer to.
- Every file under sub-*/ is a BIDS file name in a BIDS folder, or is ignored by
  .bidsignore: sub-<label>[_ses-<label>][...]_<suffix><extension>, entities in the
  specification's order, each once, labels alphanumeric, run an index, sub and ses
  equal to the folders', the data type folder anat, the suffix mask or the
  anatomical contrast (T1w, T2w, PDw, FLAIR), the extension .nii.gz or .json.
- Every image has a JSON sidecar. A mask's has Type (Brain, Lesion, Face, ROI)
  and Sources; a skull-stripped image's has SkullStripped (true) and Sources.
  Sources are BIDS URIs (bids:<dataset>:<path>) whose dataset is this one (empty
  name) or one in DatasetLinks, and (with --raw for the "raw" link, or a file://
  link) the path exists.

Exit status 0 when the dataset follows the rules; otherwise the problems are
printed one per line and the status is 1.
"""
import argparse
import fnmatch
import json
import os
import re
import sys
import urllib.parse

# Entity order from the BIDS schema (objects/entities, rules/entities).
ENTITY_ORDER = ["sub", "ses", "sample", "task", "tracksys", "acq", "ce", "trc", "stain", "rec", "dir", "run",
                "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording",
                "chunk", "seg", "res", "den", "label", "desc"]
# Entities an anatomical derivative (anat folder) may carry.
ANAT_ENTITIES = {"sub", "ses", "task", "acq", "ce", "rec", "run", "echo", "flip", "inv", "mt", "part", "chunk",
                 "space", "res", "den", "label", "desc"}
CONTRASTS = {"T1w", "T2w", "PDw", "FLAIR"}
MASK_TYPES = {"Brain", "Lesion", "Face", "ROI"}
INDEX_ENTITIES = {"run", "echo", "flip", "inv", "chunk"}


def parse_name(name):
    """(entities as an ordered list of (key, label), suffix, extension) or None."""
    match = re.fullmatch(r"((?:[a-zA-Z]+-[a-zA-Z0-9]+_)*)([a-zA-Z0-9]+)((?:\.[a-z]+)+)", name)
    if not match:
        return None
    entities = [tuple(part.split("-", 1)) for part in match.group(1).rstrip("_").split("_") if part]
    return entities, match.group(2), match.group(3)


def bidsignore_patterns(root):
    path = os.path.join(root, ".bidsignore")
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return [line.strip() for line in stream if line.strip() and not line.startswith("#")]


def ignored(relative, patterns):
    for pattern in patterns:
        folder = pattern.rstrip("/")
        # gitignore-like: a pattern ending in / matches a folder and what lies below it.
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatch(prefix, folder) or fnmatch.fnmatch(prefix, "*/" + folder) or (
                    "/" not in folder and fnmatch.fnmatch(parts[depth - 1], folder)):
                return True
    return False


def check_uri(uri, links, root, raw, problems, where):
    match = re.fullmatch(r"bids:([A-Za-z0-9_-]*):(.+)", uri)
    if not match:
        problems.append(f"{where}: Sources entry '{uri}' is not a BIDS URI (bids:<dataset>:<path>)")
        return
    dataset, path = match.groups()
    if dataset == "":
        base = root
    elif dataset not in links:
        problems.append(f"{where}: Sources entry '{uri}' names dataset '{dataset}', not in DatasetLinks")
        return
    elif dataset == "raw" and raw:
        base = raw
    elif links[dataset].startswith("file://"):
        base = urllib.parse.unquote(links[dataset][len("file://"):])
    else:
        return
    if not os.path.exists(os.path.join(base, path)):
        problems.append(f"{where}: Sources entry '{uri}' does not exist ({os.path.join(base, path)})")


def check(root, raw=None):
    problems = []
    description_file = os.path.join(root, "dataset_description.json")
    links = {}
    try:
        with open(description_file) as stream:
            description = json.load(stream)
    except (OSError, ValueError) as error:
        return [f"dataset_description.json: missing or not JSON ({error})"]
    for field in ("Name", "BIDSVersion"):
        if not isinstance(description.get(field), str) or not description[field]:
            problems.append(f"dataset_description.json: {field} is required (a string)")
    if description.get("DatasetType") != "derivative":
        problems.append("dataset_description.json: DatasetType must be 'derivative'")
    generated = description.get("GeneratedBy")
    if not isinstance(generated, list) or not generated or not all(
            isinstance(g, dict) and isinstance(g.get("Name"), str) for g in generated):
        problems.append("dataset_description.json: GeneratedBy must be a non-empty list of objects with a Name")
    links = description.get("DatasetLinks", {})
    if not isinstance(links, dict):
        problems.append("dataset_description.json: DatasetLinks must be an object")
        links = {}

    patterns = bidsignore_patterns(root)
    images = 0
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            parts = relative.split(os.sep)
            if len(parts) == 1:
                if name not in ("dataset_description.json", ".bidsignore", "README", "README.md", "CHANGES",
                                "LICENSE") and not ignored(relative, patterns):
                    problems.append(f"{relative}: not a BIDS top-level file")
                continue
            if ignored(relative, patterns):
                continue
            parsed = parse_name(name)
            if not parsed:
                problems.append(f"{relative}: not a BIDS file name")
                continue
            entities, suffix, extension = parsed
            keys = [key for key, _ in entities]
            if not keys or keys[0] != "sub":
                problems.append(f"{relative}: the name must begin with sub-<label>")
                continue
            if len(set(keys)) != len(keys):
                problems.append(f"{relative}: an entity appears twice")
            unknown = [key for key in keys if key not in ANAT_ENTITIES]
            if unknown:
                problems.append(f"{relative}: entities {unknown} are not allowed for anatomical data")
            order = [ENTITY_ORDER.index(key) for key in keys if key in ENTITY_ORDER]
            if order != sorted(order):
                problems.append(f"{relative}: entities out of the specification's order")
            for key, label in entities:
                if key in INDEX_ENTITIES and not label.isdigit():
                    problems.append(f"{relative}: {key} must be an index (digits)")
            values = dict(entities)
            expected_folder = ["sub-" + values["sub"]] + (["ses-" + values["ses"]] if "ses" in values else []) + [
                "anat"]
            if parts[:-1] != expected_folder:
                problems.append(f"{relative}: lies in {'/'.join(parts[:-1])}, its entities say "
                                f"{'/'.join(expected_folder)}")
            if suffix != "mask" and suffix not in CONTRASTS:
                problems.append(f"{relative}: suffix '{suffix}' is not mask or an anatomical contrast")
            if extension not in (".nii.gz", ".json"):
                problems.append(f"{relative}: extension '{extension}' is not .nii.gz or .json")
            if extension != ".nii.gz":
                continue
            images += 1
            sidecar_file = path[: -len(extension)] + ".json"
            try:
                with open(sidecar_file) as stream:
                    sidecar = json.load(stream)
            except (OSError, ValueError):
                problems.append(f"{relative}: no JSON sidecar")
                continue
            if suffix == "mask":
                if sidecar.get("Type") not in MASK_TYPES:
                    problems.append(f"{relative}: the sidecar's Type must be one of {sorted(MASK_TYPES)}")
            elif "desc" in values and sidecar.get("SkullStripped") is not True:
                problems.append(f"{relative}: a skull-stripped image's sidecar needs SkullStripped: true")
            sources = sidecar.get("Sources")
            if not isinstance(sources, list) or not sources:
                problems.append(f"{relative}: the sidecar needs Sources (a list of BIDS URIs)")
                continue
            for uri in sources:
                check_uri(uri, links, root, raw, problems, relative)
    if images == 0:
        problems.append("no derivative images under sub-*/")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("derivatives", help="the derivatives dataset")
    parser.add_argument("--raw", help="the source dataset, for BIDS URIs bids:raw:...")
    arguments = parser.parse_args()
    problems = check(arguments.derivatives, arguments.raw)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{arguments.derivatives}: follows the BIDS derivatives rules checked here")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
