"""Hostile inputs (test/hostile/hostile_nifti.py: every NIfTI header field
kdbet trusts, damaged containers, special files) through kdbet extract, a
batch, and the Python module: no crash, no hang, a one-line error naming the
file, and nothing written for a refused input.

Every variant goes through a batch (one kdbet worker process, restarted after
a crash) and the Python module (likewise); a sample goes through single-file runs,
whose exit codes and stderr are checked too. `run_hostile.py` runs every
variant as a single-file run (by hand: a few minutes)."""
import concurrent.futures
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

import hostile_nifti
import run_hostile


@pytest.fixture(scope="module")
def variants(work_dir):
    return run_hostile.write_variants(os.path.join(work_dir, "inputs"))


def format_problems(problems):
    return "\n".join(f"{name}: {'; '.join(found)}" for name, found in sorted(problems.items()))


def test_there_are_hundreds_of_variants(variants):
    assert len(variants) >= 150
    assert {expectation for _, expectation, _ in variants} == {"refuse", "accept", "either"}


def test_batch_refuses_each_bad_file_alone_and_writes_the_summary(kdbet, work_dir, variants):
    output = os.path.join(work_dir, "batch")
    summary = os.path.join(output, "summary.json")
    os.makedirs(output, exist_ok=True)
    result = subprocess.run([kdbet, "extract", "-i", os.path.join(work_dir, "inputs"), "--output-dir", output,
                             "--write", "mask", "--summary", summary, "-t", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    with open(summary) as stream:
        rows = {row["input"]: row for row in json.load(stream)}
    problems = {}
    for name, expectation, path in variants:
        row = rows.get(path)
        mask = os.path.join(output, os.path.basename(run_hostile.stem_of(path)) + "_mask.nii.gz")
        found = []
        if row is None:
            found.append("no summary row")
        elif row["status"] == "failed":
            if expectation == "accept":
                found.append(f"refused: {row['message']}")
            if "\n" in row["message"] or not row["message"].startswith(path + ": "):
                found.append(f"the message does not start with the file: {row['message'][:200]}")
            if "(0x" in row["message"]:
                found.append(f"an object address in the message: {row['message'][:200]}")
            if os.path.exists(mask):
                found.append("a mask was written")
        elif row["status"] == "ok":
            if expectation == "refuse":
                found.append("accepted")
            if not os.path.exists(mask):
                found.append("no mask")
        if found:
            problems[name] = found
    assert not problems, format_problems(problems)
    leftovers = [f for f in os.listdir(output) if f.startswith(".")]
    assert not leftovers, leftovers


def test_single_runs_exit_with_one_line_naming_the_file(kdbet, variants):
    # Every fifth variant, and every expected acceptance (they must write), two
    # at a time (each kdbet runs one thread); the batch test runs them all.
    sample = [v for index, v in enumerate(variants) if index % 5 == 0 or v[1] == "accept"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda v: run_hostile.run_cli(kdbet, *v, dict(os.environ)), sample))
    problems = {name: found for name, found in outcomes if found}
    assert not problems, format_problems(problems)


def test_python_read_image_and_extract(python_dir, variants):
    if not python_dir:
        pytest.skip("the Python module is not built")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = python_dir + os.pathsep + environment.get("PYTHONPATH", "")
    problems = run_hostile.run_python(variants, environment)
    assert not problems, format_problems(problems)


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink-loop", "missing"])
def test_special_files_are_refused_without_blocking(kdbet, work_dir, kind):
    folder = os.path.join(work_dir, "special")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{kind}.nii.gz")
    if os.path.lexists(path):
        os.remove(path) if not os.path.isdir(path) else os.rmdir(path)
    expected = {"fifo": "not a regular file", "device": "not a regular file",
                "symlink-loop": "a loop of symbolic links", "missing": "no such file"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # a reader that opens it blocks until a writer comes: never, here
    elif kind == "device":
        os.symlink("/dev/zero", path)
    elif kind == "symlink-loop":
        os.symlink(path, path)
    mask = os.path.join(folder, f"{kind}_mask.nii.gz")
    result = subprocess.run([kdbet, "extract", "-i", path, "-m", mask], capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2), result.stderr
    assert len(lines) == 1 and path in lines[0] and expected in lines[0], result.stderr
    assert not os.path.exists(mask)


@pytest.mark.parametrize("header", [".hdr", ".mhd", ".nhdr"])
def test_a_fifo_data_file_is_refused_without_blocking(kdbet, work_dir, header):
    # The header is a file; the voxels it points to come from a FIFO.
    volume, spacing = hostile_nifti.base_volume()
    folder = os.path.join(work_dir, "fifo-data")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    made = {
        ".hdr": lambda: {".hdr": bytes(hostile_nifti.header(volume.shape, spacing)[:-4]) + b"ni1\0"},
        ".mhd": lambda: {".mhd": hostile_nifti.metaimage_header(volume.shape, spacing, data_file="voxels.raw")},
        ".nhdr": lambda: {".nhdr": b"NRRD0004\ntype: float\ndimension: 3\nsizes: 40 48 36\n"
                                   b"encoding: raw\nendian: little\ndata file: voxels.raw\n\n"},
    }[header]()
    path = os.path.join(folder, "head" + header)
    with open(path, "wb") as stream:
        stream.write(made[header])
    os.mkfifo(os.path.join(folder, "head.img" if header == ".hdr" else "voxels.raw"))
    mask = os.path.join(folder, "head_mask.nii.gz")
    result = subprocess.run([kdbet, "extract", "-i", path, "-m", mask], capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"kdbet: error: {path}: ") and "not a regular file" in lines[0], lines
    assert not os.path.exists(mask)


def test_fifo_model_is_refused_without_blocking(kdbet, work_dir, variants):
    fifo = os.path.join(work_dir, "model-fifo.kdbm")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    head = next(path for name, _, path in variants if name == "valid")
    result = subprocess.run([kdbet, "extract", "-i", head, "-m", os.path.join(work_dir, "never_mask.nii.gz"),
                             "--model", fifo], capture_output=True, text=True, timeout=60)
    assert result.returncode in (1, 2), result.stderr
    assert fifo in result.stderr and "not a regular file" in result.stderr, result.stderr


def test_fifo_list_is_refused_without_blocking(kdbet, work_dir):
    fifo = os.path.join(work_dir, "list-fifo.txt")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    result = subprocess.run([kdbet, "extract", "--list", fifo, "--output-dir", work_dir],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr


def test_absurd_thread_counts_are_usage_errors(kdbet, work_dir, variants):
    head = next(path for name, _, path in variants if name == "valid")
    result = subprocess.run([kdbet, "extract", "-i", head, "-m", os.path.join(work_dir, "threads_mask.nii.gz"),
                             "-t", "100000"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--threads must be at most" in result.stderr, result.stderr
    assert not os.path.exists(os.path.join(work_dir, "threads_mask.nii.gz"))


def test_a_model_folder_without_models_does_not_fall_back(kdbet, work_dir, variants):
    empty = os.path.join(work_dir, "no-models")
    os.makedirs(empty, exist_ok=True)
    head = next(path for name, _, path in variants if name == "valid")
    environment = dict(os.environ, KDBET_MODEL_DIR=empty)
    result = subprocess.run([kdbet, "extract", "-i", head, "-m", os.path.join(work_dir, "fallback_mask.nii.gz")],
                            capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 1, result.stderr
    assert f"{empty}: no kdbet_student.kdbm in this folder" in result.stderr, result.stderr


def copy_head(variants, folder, name):
    import shutil

    os.makedirs(folder, exist_ok=True)
    head = next(path for variant, _, path in variants if variant == "valid")
    target = os.path.join(folder, name)
    shutil.copyfile(head, target)
    return target


def digest(path):
    import hashlib

    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


@pytest.mark.parametrize("case", ["mask-is-input", "brain-and-mask-one-file", "summary-is-input",
                                  "output-dir-is-input-dir", "names-collide-after-pattern"])
def test_outputs_never_overwrite_inputs_or_each_other(kdbet, work_dir, variants, case):
    import shutil

    folder = os.path.join(work_dir, "collisions", case)
    shutil.rmtree(folder, ignore_errors=True)
    head = copy_head(variants, folder, "h.nii.gz")
    before = digest(head)
    if case == "mask-is-input":
        command = ["-i", head, "-m", head]
        expected = "would overwrite the input"
    elif case == "brain-and-mask-one-file":
        command = ["-i", head, "-o", os.path.join(folder, "x.nii.gz"), "-m", os.path.join(folder, "x.nii.gz")]
        expected = "named as two outputs"
    elif case == "summary-is-input":
        command = ["-i", head, "--output-dir", os.path.join(folder, "out"), "--summary", head]
        expected = "would overwrite the input"
    elif case == "output-dir-is-input-dir":
        command = ["-i", folder, "--output-dir", folder]
        expected = "--output-dir is the input folder"
    else:
        # The summary named like an output the pattern makes.
        out = os.path.join(folder, "out")
        command = ["-i", folder, "--output-dir", out, "--write", "mask", "--summary", os.path.join(out, "h_mask.nii.gz")]
        expected = "named as two outputs"
    listing = sorted(os.listdir(folder))
    result = subprocess.run([kdbet, "extract"] + command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert digest(head) == before
    written = [name for name in os.listdir(folder) if name not in listing and name != "out"]
    assert not written, written


def run_with_file_size_limit(command, limit_bytes):
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=limit)


@pytest.mark.parametrize("outputs", [["-o", "brain.nii.gz", "-m", "mask.nii.gz"], ["-o", "brain.nii"],
                                     ["-o", "brain.mha"], ["-m", "mask.nii.gz", "--qc", "qc.png"]])
def test_a_full_disk_is_an_error_and_leaves_no_output(kdbet, work_dir, variants, outputs):
    # The file size limit (RLIMIT_FSIZE) fails writes the way a full disk
    # does, without root; the mask fits under it, the brain and the PNG do not.
    folder = os.path.join(work_dir, "full-disk", "-".join(o.strip("-.") for o in outputs[1::2]))
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    head = next(path for variant, _, path in variants if variant == "valid")
    command = [kdbet, "extract", "-i", head]
    for index, item in enumerate(outputs):
        command.append(os.path.join(folder, item) if index % 2 else item)
    result = run_with_file_size_limit(command, 1200)
    assert result.returncode == 1, result.stderr
    assert "disk full or over quota" in result.stderr.strip().splitlines()[-1], result.stderr
    assert os.listdir(folder) == [], os.listdir(folder)


def test_two_file_output_formats_are_refused_before_work(kdbet, work_dir, variants):
    head = next(path for variant, _, path in variants if variant == "valid")
    for name in ("x.hdr", "x.mhd", "x.nhdr"):
        result = subprocess.run([kdbet, "extract", "-i", head, "-o", os.path.join(work_dir, name)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "a two-file format" in result.stderr, result.stderr


@pytest.mark.parametrize("name,expected", [("head.mgz", "mri_convert"), ("slice.dcm", "dcm2niix")])
def test_unread_formats_say_how_to_convert(kdbet, work_dir, name, expected):
    path = os.path.join(work_dir, name)
    with open(path, "wb") as stream:
        stream.write(b"\0" * 1024)
    result = subprocess.run([kdbet, "extract", "-i", path, "-m", os.path.join(work_dir, "unread_mask.nii.gz")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and path in result.stderr and expected in result.stderr, result.stderr


def test_evaluate_takes_the_empty_mask_extract_writes_when_no_brain_is_found(kdbet, work_dir):
    import json as json_module

    import numpy as np

    volume, spacing = hostile_nifti.base_volume()
    empty = os.path.join(work_dir, "empty_mask.nii.gz")
    reference = os.path.join(work_dir, "reference_mask.nii.gz")
    with open(empty, "wb") as stream:
        stream.write(hostile_nifti.assemble(hostile_nifti.header(volume.shape, spacing, datatype=2, bitpix=8),
                                            np.zeros(volume.shape, np.uint8).tobytes(order="F")))
    with open(reference, "wb") as stream:
        stream.write(hostile_nifti.assemble(hostile_nifti.header(volume.shape, spacing, datatype=2, bitpix=8),
                                            (volume > 300).astype(np.uint8).tobytes(order="F")))
    result = subprocess.run([kdbet, "evaluate", empty, reference, "--json"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    metrics = json_module.loads(result.stdout)
    assert metrics["dice"] == 0 and metrics["predicted_ml"] == 0 and metrics["hd95_mm"] is None


def worker_of(parent, timeout=60):
    """The process id of the `kdbet __worker` that process `parent` started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    parent_of_entry = int(stream.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as stream:
                    command = stream.read().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if parent_of_entry == parent and b"__worker" in command:
                return int(entry)
        time.sleep(0.01)
    raise AssertionError(f"process {parent} started no worker")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are started through /proc")
def test_a_volume_whose_worker_is_killed_fails_alone(kdbet, work_dir, variants):
    # What the out-of-memory killer, or a crash inside a library, does to one
    # volume of a cohort: that volume fails, the others are done, the summary
    # is written, and no temporary file is left.
    folder = os.path.join(work_dir, "killed-worker")
    shutil.rmtree(folder, ignore_errors=True)
    inputs, output = os.path.join(folder, "in"), os.path.join(folder, "out")
    os.makedirs(inputs)
    head = next(path for variant, _, path in variants if variant == "valid")
    count = 6
    for index in range(1, count + 1):
        shutil.copy(head, os.path.join(inputs, f"head{index}.nii.gz"))
    summary = os.path.join(output, "summary.json")
    process = subprocess.Popen([kdbet, "extract", "-i", inputs, "--output-dir", output, "--write", "mask,brain,qc",
                                "--summary", summary, "-t", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(f"[1/{count}]" in line for line in lines):
            lines.append(process.stderr.readline())
            assert lines[-1], lines  # kdbet ended before the first volume was done
        # The first volume is done: the worker is on a later one.
        os.kill(worker_of(process.pid), signal.SIGKILL)
        lines += process.stderr.readlines()
        assert process.wait(timeout=300) == 1, lines
    finally:
        if process.poll() is None:
            process.kill()
    with open(summary) as stream:
        rows = json.load(stream)
    assert len(rows) == count, rows
    failed = [row for row in rows if row["status"] != "ok"]
    assert len(failed) == 1 and failed[0]["input"] != rows[0]["input"], rows
    message = failed[0]["message"]
    assert message.startswith(failed[0]["input"] + ": the worker process was ended by signal 9"), message
    for row in rows:
        stem = os.path.basename(row["input"])[: -len(".nii.gz")]
        written = os.path.exists(os.path.join(output, stem + "_mask.nii.gz"))
        assert written == (row["status"] == "ok"), (row, sorted(os.listdir(output)))
    leftovers = [name for name in os.listdir(output) if name.startswith(".")]
    assert not leftovers, leftovers


def test_cli_and_python_agree_when_pixdim_and_sform_disagree(kdbet, python_dir, work_dir):
    # Both set, both valid, 4 mm (pixdim, qform) against 3.5 mm (sform): the
    # command line and the Python module read the file through one reader and
    # must see the same grid and give the same mask.
    if not python_dir:
        pytest.skip("the Python module is not built")
    import struct

    import nibabel
    import numpy as np

    volume, spacing = hostile_nifti.base_volume()
    h = hostile_nifti.header(volume.shape, spacing)
    half = [-(n - 1) * 3.5 / 2 for n in volume.shape]
    struct.pack_into("<12f", h, hostile_nifti.SROW, 3.5, 0, 0, half[0], 0, 3.5, 0, half[1], 0, 0, 3.5, half[2])
    head = os.path.join(work_dir, "pixdim-sform-disagree.nii.gz")
    with open(head, "wb") as stream:
        stream.write(hostile_nifti.assemble(h, volume.tobytes(order="F")))
    mask = os.path.join(work_dir, "pixdim-sform-disagree_mask.nii.gz")
    result = subprocess.run([kdbet, "extract", "-i", head, "-m", mask, "-t", "1"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    program = ("import json, sys, kdbet\n"
               "array, spacing, origin, direction = kdbet.read_image(sys.argv[1])\n"
               "mask = kdbet.Model(threads=1).extract(array, spacing, origin, direction)['mask']\n"
               "print(json.dumps({'spacing': list(spacing), 'origin': list(origin), 'mask': int(mask.sum()),\n"
               "                  'shape': list(mask.shape)}))\n")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = python_dir + os.pathsep + environment.get("PYTHONPATH", "")
    python = subprocess.run([sys.executable, "-c", program, head], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert python.returncode == 0, python.stderr
    seen = json.loads(python.stdout)
    written = nibabel.load(mask)
    assert np.allclose(sorted(seen["spacing"]), sorted(written.header.get_zooms()[:3]), atol=1e-4), seen
    assert np.allclose(seen["spacing"], spacing, atol=1e-4), seen  # ITK's spacing is pixdim's
    assert seen["mask"] == int(np.asarray(written.dataobj).sum()), seen


def test_a_usage_error_found_late_leaves_no_output_folder(kdbet, work_dir, variants):
    head = next(path for variant, _, path in variants if variant == "valid")
    parent = os.path.join(work_dir, "never-made")
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(parent)
    folder = os.path.join(parent, "out")
    for bad in (["--threshold", "5"], ["--border", "nan"], ["--model", os.path.join(parent, "missing.kdbm")]):
        result = subprocess.run([kdbet, "extract", "-i", head, "--output-dir", folder] + bad, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode in (1, 2), result.stderr
        assert not os.path.exists(folder), (bad, result.stderr)


@pytest.mark.parametrize("character", ["m", "\u00e9"])
def test_an_output_name_near_the_length_limit_is_written(kdbet, work_dir, variants, character):
    # 251 bytes is a legal file name; its temporary name must be one too.
    head = next(path for variant, _, path in variants if variant == "valid")
    folder = os.path.join(work_dir, "long-names")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    stem_bytes = 251 - len(".nii.gz")
    name = character * (stem_bytes // len(character.encode())) + ".nii.gz"
    result = subprocess.run([kdbet, "extract", "-i", head, "-m", os.path.join(folder, name)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert os.listdir(folder) == [name]
