"""A Nipype interface to ``kdbet extract``, so that kdbet drops into Nipype
workflows where ``fsl.BET`` or FreeSurfer's ``SynthStrip`` would go::

    from nipype.pipeline import engine as pe
    from kdbet.interfaces import KDBET

    strip = pe.Node(KDBET(threads=4), name="skullstrip")
    strip.inputs.in_file = "sub-01_T1w.nii.gz"
    # outputs: out_file (sub-01_T1w_desc-brain.nii.gz),
    #          out_mask (sub-01_T1w_desc-brain_mask.nii.gz)

The interface runs the ``kdbet`` executable found on ``PATH`` (or the one named
by the ``KDBET_EXECUTABLE`` environment variable), so Nipype's caching,
provenance and execution plugins (MultiProc, SLURM) apply unchanged. Importing
this module needs Nipype (Debian: python3-nipype); the rest of the package
does not.
"""
import os

from nipype.interfaces.base import (
    CommandLine,
    CommandLineInputSpec,
    File,
    TraitedSpec,
    isdefined,
    traits,
)

__all__ = ["KDBET"]


class KDBETInputSpec(CommandLineInputSpec):
    in_file = File(exists=True, mandatory=True, argstr="-i %s", position=0,
                   desc="head volume (any scalar 3D image ITK reads)")
    out_file = File(argstr="-o %s", name_source=["in_file"], name_template="%s_desc-brain", keep_extension=True,
                    hash_files=False, desc="brain-only image (the input masked)")
    out_mask = File(argstr="-m %s", name_source=["in_file"], name_template="%s_desc-brain_mask",
                    keep_extension=True, hash_files=False, desc="brain mask (uint8, 0/1)")
    out_probability = File(argstr="-p %s", hash_files=False, desc="brain probability map (float), when named")
    out_qc = File(argstr="--qc %s", hash_files=False, desc="QC picture (PNG) of the mask outline, when named")
    model = File(exists=True, argstr="--model %s", desc="student model (default: the shipped student)")
    threshold = traits.Range(low=0.0, high=1.0, exclude_low=True, exclude_high=True, argstr="--threshold %g",
                             desc="brain probability threshold (default 0.5)")
    border = traits.Float(argstr="-b %g", desc="move the mask's border out (> 0) or in (< 0), in mm")
    mirror = traits.Bool(argstr="--mirror", desc="test-time left-right mirroring (twice the network time)")
    device = traits.Str(argstr="--device %s", xor=["gpu"], desc="auto (default), cpu, cuda or cuda:N")
    gpu = traits.Bool(argstr="-g", xor=["device"], desc="run on the GPU (as --device cuda)")
    threads = traits.Int(argstr="-t %d", desc="CPU threads for the network (default: all cores)")


class KDBETOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="brain-only image")
    out_mask = File(exists=True, desc="brain mask")
    out_probability = File(desc="brain probability map, when asked for")
    out_qc = File(desc="QC picture, when asked for")


class KDBET(CommandLine):
    """Skull stripping with KDBrainExtraction's distilled student UNet++.

    >>> from kdbet.interfaces import KDBET
    >>> strip = KDBET(in_file="head.nii.gz", threads=2)  # doctest: +SKIP
    >>> strip.cmdline  # doctest: +SKIP
    'kdbet extract -i head.nii.gz -m head_desc-brain_mask.nii.gz -o head_desc-brain.nii.gz -t 2'
    """

    input_spec = KDBETInputSpec
    output_spec = KDBETOutputSpec

    def __init__(self, command=None, **inputs):
        # Resolved when the interface is made, so a workflow built after
        # setting KDBET_EXECUTABLE runs that executable.
        super().__init__(command=command or os.environ.get("KDBET_EXECUTABLE", "kdbet") + " extract", **inputs)

    def _list_outputs(self):
        outputs = super()._list_outputs()  # the name-templated out_file and out_mask
        for name in ("out_probability", "out_qc"):
            value = getattr(self.inputs, name)
            if isdefined(value):
                outputs[name] = os.path.abspath(value)
        return outputs
