"""kdbet.interfaces.KDBET inside a real Nipype Workflow: the command line it
builds, its name-templated outputs, and masks identical to kdbet extract's."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import kdbet

pe = pytest.importorskip("nipype.pipeline.engine", reason="Nipype (python3-nipype) is not installed")
niu = pytest.importorskip("nipype.interfaces.utility")
from kdbet.interfaces import KDBET  # noqa: E402 (needs Nipype)


def brain_volume_ml(mask_file):
    """A downstream node: the mask's volume (imports inside, as Nipype runs it alone)."""
    import nibabel as nib
    import numpy as np

    image = nib.load(mask_file)
    return float(np.asarray(image.dataobj).sum() * np.prod(image.header.get_zooms()[:3]) / 1000.0)


@pytest.fixture()
def executable_env(kdbet_executable, monkeypatch):
    monkeypatch.setenv("KDBET_EXECUTABLE", os.path.abspath(kdbet_executable))


def test_command_line_and_name_templates(executable_env, image_file, output_dir):
    head = os.path.join(output_dir, "nipype_head.nii.gz")
    shutil.copyfile(image_file, head)
    interface = KDBET(in_file=head, threads=2, border=1.5, gpu=False)
    command = interface.cmdline.split()
    assert command[:3] == [os.environ["KDBET_EXECUTABLE"], "extract", "-i"]
    assert command[command.index("-o") + 1].endswith("nipype_head_desc-brain.nii.gz")
    assert command[command.index("-m") + 1].endswith("nipype_head_desc-brain_mask.nii.gz")
    assert command[command.index("-t") + 1] == "2" and command[command.index("-b") + 1] == "1.5"
    assert "-g" not in command
    with pytest.raises(OSError, match="mutually exclusive"):
        KDBET(in_file=head, gpu=True, device="cpu")  # xor: one way to choose the device


def test_runs_in_a_workflow_like_the_command_line(executable_env, kdbet_executable, image_file, output_dir):
    base = os.path.join(output_dir, "nipype_workflow")
    shutil.rmtree(base, ignore_errors=True)
    strip = pe.Node(KDBET(threads=2), name="skullstrip")
    strip.inputs.in_file = os.path.abspath(image_file)
    volume = pe.Node(niu.Function(input_names=["mask_file"], output_names=["ml"], function=brain_volume_ml),
                     name="volume")
    workflow = pe.Workflow(name="kdbet_test", base_dir=base)
    # Nipype deletes outputs no node consumes; this test looks at both.
    workflow.config["execution"]["remove_unnecessary_outputs"] = False
    workflow.connect(strip, "out_mask", volume, "mask_file")
    graph = workflow.run()
    nodes = {node.name: node for node in graph.nodes()}
    outputs = nodes["skullstrip"].result.outputs
    stem = os.path.basename(image_file).replace(".nii.gz", "")
    assert os.path.basename(outputs.out_file) == stem + "_desc-brain.nii.gz"
    assert os.path.basename(outputs.out_mask) == stem + "_desc-brain_mask.nii.gz"
    assert os.path.exists(outputs.out_file) and os.path.exists(outputs.out_mask)

    reference_file = os.path.join(output_dir, "nipype_reference_mask.nii.gz")
    subprocess.run([kdbet_executable, "extract", "-i", image_file, "-m", reference_file, "-t", "2"], check=True)
    reference = kdbet.read_image(reference_file)[0]
    np.testing.assert_array_equal(kdbet.read_image(outputs.out_mask)[0], reference)
    spacing = kdbet.read_image(reference_file)[1]
    assert nodes["volume"].result.outputs.ml == pytest.approx(reference.sum() * np.prod(spacing) / 1000.0, rel=1e-6)

    # Nipype's cache: a second run of the same workflow reuses the node's result.
    mtime = os.stat(outputs.out_mask).st_mtime_ns
    workflow.run()
    assert os.stat(outputs.out_mask).st_mtime_ns == mtime
