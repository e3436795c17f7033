"""kdbet bids on a small BIDS dataset made from IXI and avg152 heads: naming,
sidecars and dataset_description against the BIDS derivatives rules of
scripts/check-bids-derivatives.py, a bad scan failing alone, reruns,
participant and session selection, the group level and usage errors."""
import csv
import gzip
import importlib.util
import json
import os
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "..", "..", "scripts", "check-bids-derivatives.py")


def load_checker():
    spec = importlib.util.spec_from_file_location("check_bids_derivatives", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_kdbet(options, *arguments):
    return subprocess.run([options["kdbet"], *arguments], capture_output=True, text=True, timeout=600)


def make_dataset(options, folder):
    """sub-01: session 1 with a T1w and a T2w, session 2 with an acq/run T1w;
    sub-02: a T1w whose gzip stream is cut short."""
    shutil.rmtree(folder, ignore_errors=True)
    scans = {
        "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz": options["t1"][0],
        "sub-01/ses-1/anat/sub-01_ses-1_T2w.nii.gz": options["t2"],
        "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_run-1_T1w.nii.gz": options["t1"][1],
    }
    for relative, source in scans.items():
        os.makedirs(os.path.dirname(os.path.join(folder, relative)), exist_ok=True)
        shutil.copyfile(source, os.path.join(folder, relative))
        with open(os.path.join(folder, relative.replace(".nii.gz", ".json")), "w") as stream:
            json.dump({"MagneticFieldStrength": 3}, stream)
    broken = os.path.join(folder, "sub-02/anat/sub-02_T1w.nii.gz")
    os.makedirs(os.path.dirname(broken))
    with open(options["t1"][0], "rb") as stream:
        data = stream.read()
    with open(broken, "wb") as stream:
        stream.write(data[: len(data) // 3])
    with open(os.path.join(folder, "dataset_description.json"), "w") as stream:
        json.dump({"Name": "kdbet test", "BIDSVersion": "1.9.0"}, stream)
    return folder


@pytest.fixture(scope="module")
def study(options):
    bids = make_dataset(options, os.path.join(options["output_dir"], "bids"))
    output = os.path.join(options["output_dir"], "bids-derivatives")
    shutil.rmtree(output, ignore_errors=True)
    result = run_kdbet(options, "bids", bids, output, "participant", "-t", "2")
    return {"bids": bids, "output": output, "result": result}


EXPECTED = {
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.json",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_T1w.nii.gz",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_T1w.json",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brainT2w_mask.nii.gz",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brainT2w_mask.json",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_T2w.nii.gz",
    "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_T2w.json",
    "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_run-1_desc-brain_mask.nii.gz",
    "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_run-1_desc-brain_mask.json",
    "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_run-1_desc-brain_T1w.nii.gz",
    "sub-01/ses-2/anat/sub-01_ses-2_acq-fast_run-1_desc-brain_T1w.json",
    "sub-01/figures/sub-01_ses-1_desc-brain_mask.png",
    "sub-01/figures/sub-01_ses-1_desc-brainT2w_mask.png",
    "sub-01/figures/sub-01_ses-2_acq-fast_run-1_desc-brain_mask.png",
    "dataset_description.json",
    ".bidsignore",
    "logs/sub-01_kdbet_summary.json",
    "logs/sub-02_kdbet_summary.json",
}


def all_files(folder):
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files}


def test_bad_scan_fails_alone_and_is_listed(study):
    result = study["result"]
    assert result.returncode == 1, result.stderr
    assert "3 of 4 scans done" in result.stdout
    assert "1 failed" in result.stdout
    assert "sub-02_T1w.nii.gz" in result.stdout.split("failed:")[1]
    assert not os.path.exists(os.path.join(study["output"], "sub-02"))


def test_outputs_are_the_bids_derivatives_expected(study):
    assert all_files(study["output"]) == EXPECTED


def test_derivatives_follow_the_bids_rules(study):
    assert load_checker().check(study["output"], study["bids"]) == []


def test_sidecars_and_dataset_description(study):
    output = study["output"]
    with open(os.path.join(output, "dataset_description.json")) as stream:
        description = json.load(stream)
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "kdbet"
    assert description["GeneratedBy"][0]["Version"]
    assert "kdbet bids" in description["GeneratedBy"][0]["Description"]
    with open(os.path.join(output, "sub-01/ses-1/anat/sub-01_ses-1_desc-brainT2w_mask.json")) as stream:
        mask = json.load(stream)
    assert mask["Type"] == "Brain"
    assert mask["Sources"] == ["bids:raw:sub-01/ses-1/anat/sub-01_ses-1_T2w.nii.gz"]
    record = mask["KDBrainExtraction"]
    assert len(record["StudentModel"]) == 16 and record["Threshold"] == 0.5 and record["Device"] == "cpu"
    assert record["BrainVolumeMillilitres"] > 800
    with open(os.path.join(output, "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_T2w.json")) as stream:
        brain = json.load(stream)
    assert brain["SkullStripped"] is True
    assert brain["Sources"][1] == "bids::sub-01/ses-1/anat/sub-01_ses-1_desc-brainT2w_mask.nii.gz"


def test_mask_is_the_one_kdbet_extract_writes(study, options):
    mask_file = os.path.join(study["output"], "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz")
    reference_file = os.path.join(options["output_dir"], "extract_mask.nii.gz")
    result = run_kdbet(options, "extract", "-i", options["t1"][0], "-m", reference_file, "-t", "2")
    assert result.returncode == 0, result.stderr
    mask, reference = nib.load(mask_file), nib.load(reference_file)
    np.testing.assert_array_equal(np.asarray(mask.dataobj), np.asarray(reference.dataobj))
    np.testing.assert_allclose(mask.affine, nib.load(options["t1"][0]).affine, atol=1e-4)


def test_rerun_skips_finished_scans_and_overwrite_redoes_them(study, options):
    mask_file = os.path.join(study["output"], "sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz")
    before = os.stat(mask_file).st_mtime_ns
    result = run_kdbet(options, "bids", study["bids"], study["output"], "participant", "--participant-label", "01")
    assert result.returncode == 0, result.stderr
    assert "3 already done, skipped" in result.stdout
    assert os.stat(mask_file).st_mtime_ns == before
    with open(os.path.join(study["output"], "logs/sub-01_kdbet_summary.json")) as stream:
        rows = json.load(stream)
    assert [row["status"] for row in rows] == ["skipped"] * 3
    assert all(row["brain_ml"] > 800 for row in rows)
    # Only the T2w, again: the participant's other rows stay in its summary.
    result = run_kdbet(options, "bids", study["bids"], study["output"], "participant", "--participant_label",
                       "sub-01", "--session-label", "1", "--suffix", "T2w", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert "1 of 1 scans done" in result.stdout
    with open(os.path.join(study["output"], "logs/sub-01_kdbet_summary.json")) as stream:
        rows = json.load(stream)
    assert sorted(row["status"] for row in rows) == ["ok", "skipped", "skipped"]
    assert os.stat(mask_file).st_mtime_ns == before


def test_group_level_lists_missing_scans_and_merges_summaries(study, options):
    result = run_kdbet(options, "bids", study["bids"], study["output"], "group")
    assert result.returncode == 1
    assert "3 of 4 scans have their derivatives" in result.stdout
    assert "missing: sub-02/anat/sub-02_T1w.nii.gz" in result.stdout
    with open(os.path.join(study["output"], "logs/kdbet_group_summary.csv")) as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    assert sum(row["status"] == "failed" for row in rows) == 1
    result = run_kdbet(options, "bids", study["bids"], study["output"], "group", "--participant-label", "01")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("arguments, message", [
    (["{bids}/sub-01", "{out}", "participant"], "not a BIDS dataset (no dataset_description.json)"),
    (["{bids}", "{bids}", "participant"], "must not be the BIDS dataset itself"),
    (["{bids}", "{out}", "subject"], "analysis_level"),
    (["{bids}", "{out}", "participant", "--participant-label", "07"], "participant '07' is not in"),
    (["{bids}", "{out}", "participant", "--suffix", "T1"], "--suffix"),
    (["{bids}", "{out}", "participant", "-g", "--device", "cpu"], "contradict"),
])
def test_usage_errors_exit_2_with_one_line(study, options, arguments, message):
    out = os.path.join(options["output_dir"], "never-written")
    result = run_kdbet(options, "bids", *[a.format(bids=study["bids"], out=out) for a in arguments])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(out)


def test_checker_reports_violations(study, options):
    copy = os.path.join(options["output_dir"], "bids-derivatives-broken")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(study["output"], copy)
    anat = os.path.join(copy, "sub-01/ses-1/anat")
    os.rename(os.path.join(anat, "sub-01_ses-1_desc-brain_T1w.nii.gz"),
              os.path.join(anat, "sub-01_desc-brain_ses-1_T1w.nii.gz"))
    os.remove(os.path.join(anat, "sub-01_ses-1_desc-brainT2w_mask.json"))
    with open(os.path.join(copy, "notes.txt"), "w") as stream:
        stream.write("x")
    problems = "\n".join(load_checker().check(copy, study["bids"]))
    assert "sub-01_desc-brain_ses-1_T1w.nii.gz: entities out of the specification's order" in problems
    assert "sub-01_ses-1_desc-brainT2w_mask.nii.gz: no JSON sidecar" in problems
    assert "notes.txt: not a BIDS top-level file" in problems
    assert "sub-01_ses-1_desc-brain_mask.nii.gz' does not exist" not in problems
