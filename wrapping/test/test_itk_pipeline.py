"""The wrapped filters in an ITK Python pipeline (scripts/build-with-itk-wrapping.sh runs this
with PYTHONPATH set to a wrapping-enabled ITK build that holds the module's wrapping).

Environment: KDBET_TEST_HEAD (an IXI T1w head), KDBET_TEST_MASK (its reference brain mask),
KDBET_EXECUTABLE (kdbet of the same build). KDBET_MODEL_DIR is not set: the wrapped library
finds its shipped models itself.
"""
import os
import subprocess

import numpy as np
import pytest

itk = pytest.importorskip("itk")

HEAD = os.environ.get("KDBET_TEST_HEAD", "")
REFERENCE = os.environ.get("KDBET_TEST_MASK", "")
KDBET = os.environ.get("KDBET_EXECUTABLE", "")
FloatImage = itk.Image[itk.F, 3]
MaskImage = itk.Image[itk.UC, 3]

pytestmark = pytest.mark.skipif(not (os.path.isfile(HEAD) and os.path.isfile(REFERENCE)),
                                reason="KDBET_TEST_HEAD and KDBET_TEST_MASK name no files")


@pytest.fixture(scope="module")
def head():
    return itk.imread(HEAD, itk.F)


@pytest.fixture(scope="module")
def student(head):
    extractor = itk.KDStudentMaskFilter[FloatImage, MaskImage].New()
    extractor.SetInput(head)
    extractor.SetNumberOfTorchThreads(2)
    extractor.Update()
    return extractor


def test_student_mask_is_the_command_lines(student, tmp_path):
    """The filter's mask, voxel for voxel, is the one kdbet writes for the same file."""
    if not os.access(KDBET, os.X_OK):
        pytest.skip("KDBET_EXECUTABLE names no executable")
    environment = {k: v for k, v in os.environ.items() if k != "KDBET_MODEL_DIR"}
    cli_mask = tmp_path / "cli_mask.nii.gz"
    subprocess.run([KDBET, "extract", "-i", HEAD, "-m", str(cli_mask), "--threads", "2"], check=True,
                   env=environment)
    ours = itk.array_from_image(student.GetMaskOutput())
    theirs = itk.array_from_image(itk.imread(str(cli_mask), itk.UC))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs), f"{np.count_nonzero(ours != theirs)} voxels differ"
    mask = student.GetMaskOutput()
    reference = itk.imread(HEAD, itk.F)
    assert np.allclose(itk.origin(mask), itk.origin(reference))
    assert np.allclose(itk.spacing(mask), itk.spacing(reference))


def test_hybrid_loss_metric_scores_the_mask(student):
    """HybridLossMetric in the pipeline: the student's mask against the reference mask."""
    cast = itk.CastImageFilter[MaskImage, FloatImage].New(Input=student.GetMaskOutput())
    metric = itk.HybridLossMetric[FloatImage].New()
    metric.SetPredictionImage(cast.GetOutput())
    metric.SetTargetImage(itk.imread(REFERENCE, itk.F))
    metric.Update()
    assert metric.GetDice() > 0.93
    assert 0.0 <= metric.GetSpecificity() <= 1.0


def test_mask_drives_a_masking_chain(head, student):
    """A registration-style chain: the mask into itk.MaskImageFilter gives the filter's own
    masked output, and nothing outside the brain."""
    masked = itk.MaskImageFilter[FloatImage, MaskImage, FloatImage].New(Input=head,
                                                                         MaskImage=student.GetMaskOutput())
    masked.Update()
    chain = itk.array_from_image(masked.GetOutput())
    assert np.array_equal(chain, itk.array_from_image(student.GetMaskedOutput()))
    assert not np.any(chain[itk.array_from_image(student.GetMaskOutput()) == 0])


def test_teacher_keeps_the_brain(head):
    """The teacher's brain-only image is dark outside the reference brain and bright inside."""
    teacher = itk.KDTeacherImageFilter[FloatImage, FloatImage].New(Input=head)
    teacher.SetNumberOfTorchThreads(2)
    teacher.Update()
    brain = itk.array_from_image(teacher.GetOutput())
    reference = itk.array_from_image(itk.imread(REFERENCE, itk.UC)) > 0
    assert brain.shape == reference.shape
    assert brain[reference].mean() > 10 * max(brain[~reference].mean(), 1e-6)


def test_a_new_threshold_reruns_only_the_decision(head):
    """ITK's pipeline semantics from Python: a new threshold changes the mask on Update()."""
    extractor = itk.KDStudentMaskFilter[FloatImage, MaskImage].New(Input=head)
    extractor.SetNumberOfTorchThreads(2)
    extractor.Update()
    default = int(itk.array_from_image(extractor.GetMaskOutput()).sum())
    extractor.SetThreshold(0.95)
    extractor.Update()
    assert int(itk.array_from_image(extractor.GetMaskOutput()).sum()) < default
