"""The Python module against the command line, on the same input."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import kdbet


@pytest.fixture(scope="module")
def extractor():
    return kdbet.Extractor(threads=2)


@pytest.fixture(scope="module")
def cli_mask(kdbet_executable, image_file, output_dir):
    mask_file = os.path.join(output_dir, "cli_mask.nii.gz")
    subprocess.run([kdbet_executable, "extract", "-i", image_file, "-m", mask_file, "--threads", "2"], check=True)
    return kdbet.read_image(mask_file)[0]


def test_identical_to_the_command_line(extractor, image_file, cli_mask):
    array, spacing, origin, direction = kdbet.read_image(image_file)
    result = extractor.extract(array, spacing, origin, direction)
    assert result["mask"].dtype == np.uint8
    assert result["mask"].shape == array.shape
    np.testing.assert_array_equal(result["mask"], cli_mask.astype(np.uint8))
    assert result["probability"].dtype == np.float32
    assert np.all((result["probability"] >= 0) & (result["probability"] <= 1))
    # The brain image is the input inside the mask, 0 outside.
    inside = result["mask"] == 1
    np.testing.assert_array_equal(result["brain"][inside], array[inside])
    assert np.all(result["brain"][~inside] == 0)


def test_mirroring_matches_the_command_line(extractor, kdbet_executable, image_file, output_dir):
    probability_file = os.path.join(output_dir, "cli_mirrored_probability.nii.gz")
    subprocess.run(
        [kdbet_executable, "extract", "-i", image_file, "-p", probability_file, "--mirror", "--threads", "2"],
        check=True,
    )
    array, spacing, origin, direction = kdbet.read_image(image_file)
    mirrored = extractor.extract(array, spacing, origin, direction, mirror=True)["probability"]
    np.testing.assert_allclose(mirrored, kdbet.read_image(probability_file)[0], atol=1e-6)
    # Mirroring changes the probabilities: the option reaches the network.
    plain = extractor.extract(array, spacing, origin, direction)["probability"]
    assert np.abs(mirrored - plain).max() > 1e-3


def test_border_grows_and_shrinks_the_mask(extractor, image_file, cli_mask):
    array, spacing, origin, direction = kdbet.read_image(image_file)
    plain = cli_mask.astype(bool)
    grown = extractor.extract(array, spacing, origin, direction, border=2.0)["mask"].astype(bool)
    shrunk = extractor.extract(array, spacing, origin, direction, border=-2.0)["mask"].astype(bool)
    assert np.all(grown[plain]) and grown.sum() > plain.sum() * 1.05
    assert not np.any(shrunk[~plain]) and shrunk.sum() < plain.sum() * 0.95
    with pytest.raises(ValueError):
        extractor.extract(array, spacing, origin, direction, border=float("nan"))


def test_nibabel_round_trip_keeps_geometry(extractor, image_file, cli_mask, output_dir):
    nibabel = pytest.importorskip("nibabel")
    image = nibabel.load(image_file)
    result = extractor.extract(image)
    mask = result["mask"]
    assert isinstance(mask, nibabel.Nifti1Image)
    assert mask.shape == image.shape[:3]
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-5)
    # nibabel's affine and ITK's geometry come from the same header: the
    # same mask up to rounding of the grid (a handful of boundary voxels).
    ours = np.asarray(mask.dataobj).transpose(2, 1, 0)
    reference = cli_mask.astype(np.uint8)
    dice = 2 * np.sum(ours & reference) / (np.sum(ours) + np.sum(reference))
    assert dice > 0.999
    path = os.path.join(output_dir, "nibabel_brain.nii.gz")
    nibabel.save(result["brain"], path)
    assert nibabel.load(path).shape == image.shape[:3]


def test_geometry_is_used(extractor, image_file):
    # The same voxels declared with axes flipped by the direction matrix give
    # the same brain, flipped: extraction works in physical space.
    array, spacing, origin, direction = kdbet.read_image(image_file)
    flipped = np.ascontiguousarray(array[:, :, ::-1])
    d = np.asarray(direction).reshape(3, 3).copy()
    new_origin = np.asarray(origin) + d[:, 0] * spacing[0] * (array.shape[2] - 1)
    d[:, 0] *= -1
    plain = extractor.extract(array, spacing, origin, direction)["mask"]
    mirrored = extractor.extract(flipped, spacing, tuple(new_origin), tuple(d.ravel()))["mask"]
    agreement = np.mean(plain == mirrored[:, :, ::-1])
    assert agreement > 0.999


def test_bad_input_raises(extractor):
    with pytest.raises(ValueError, match="2D array"):
        extractor.extract(np.zeros((64, 64), dtype=np.float32))
    with pytest.raises(kdbet.ExtractionError, match="array: the image is constant"):
        extractor.extract(np.zeros((32, 32, 32), dtype=np.float32), (2, 2, 2))
    head = np.random.default_rng(1).random((32, 32, 32), dtype=np.float32)
    head[3, 4, 5] = np.nan
    with pytest.raises(kdbet.ExtractionError, match="array: 1 voxels are NaN or infinite"):
        extractor.extract(head, (2, 2, 2))
    with pytest.raises(ValueError, match="array: invalid voxel spacing"):
        extractor.extract(np.random.default_rng(2).random((32, 32, 32), dtype=np.float32), (0, 2, 2))
    with pytest.raises(ValueError, match="spacing needs 3 numbers"):
        extractor.extract(head, (2, 2))
    with pytest.raises(ValueError, match="needs a teacher model"):
        extractor.student.predict_brain(head)


def test_bad_model_raises(output_dir):
    corrupt = os.path.join(output_dir, "corrupt.kdbm")
    with open(corrupt, "wb") as stream:
        stream.write(b"not a model")
    with pytest.raises(kdbet.ExtractionError, match="corrupt.kdbm: not a KDBrainExtraction model file"):
        kdbet.Model(corrupt)
    with pytest.raises(kdbet.ExtractionError, match="no-such.kdbm: no such file"):
        kdbet.Model(os.path.join(output_dir, "no-such.kdbm"))


def test_gil_is_released(extractor, image_file):
    # While one thread extracts, another keeps running Python code.
    array, spacing, origin, direction = kdbet.read_image(image_file)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.monotonic()
    extractor.extract(array, spacing, origin, direction)
    elapsed = time.monotonic() - start
    done.set()
    ticker.join()
    during = [t for t in ticks if start <= t <= start + elapsed]
    assert len(during) > 0.5 * elapsed / 0.01


def test_concurrent_writers_of_one_file_never_leave_a_mixed_or_partial_file(output_dir):
    # Two processes write different images to one name, many times over:
    # each write goes through its own temporary name, so the file is always
    # one of the two images, whole, and no temporary is left behind.
    folder = os.path.join(output_dir, "concurrent-writers")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "shared.nii.gz")
    program = ("import sys, numpy as np, kdbet\n"
               "value = float(sys.argv[2])\n"
               "array = np.full((24, 20, 16), value, np.float32)\n"
               "array[0, 0, 0] = -value\n"
               "for _ in range(25):\n"
               "    kdbet.write_image(array, sys.argv[1], spacing=(2.0, 2.0, 2.0))\n")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(kdbet.__file__)),
                                                            environment.get("PYTHONPATH")) if p)
    writers = [subprocess.Popen([sys.executable, "-c", program, target, str(value)], env=environment)
               for value in (1.0, 2.0)]
    seen = set()
    while any(writer.poll() is None for writer in writers):
        if os.path.exists(target):
            array = kdbet.read_image(target)[0]
            assert array.shape == (24, 20, 16)
            value = float(array[1, 1, 1])
            assert value in (1.0, 2.0) and np.all(array[1:] == value) and array[0, 0, 0] == -value
            seen.add(value)
    assert [writer.returncode for writer in writers] == [0, 0]
    assert seen  # the file was read while being rewritten
    assert sorted(os.listdir(folder)) == ["shared.nii.gz"]
