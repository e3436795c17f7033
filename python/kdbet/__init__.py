"""Brain extraction (skull stripping) of 3D head MRI with knowledge-distilled UNet++ networks.

The networks run in C++ (ITK + LibTorch) with the GIL released. Images can be:

* NumPy arrays indexed ``[z, y, x]`` with ITK geometry (LPS; spacing, origin
  in x-y-z order; direction as a row-major 3x3 matrix);
* ``itk.Image`` objects, when the ``itk`` package is importable;
* nibabel images (``Nifti1Image`` and friends), when ``nibabel`` is importable.

Results come back in the kind that went in, on the same grid::

    import nibabel as nib, kdbet
    extractor = kdbet.Extractor()                # loads the shipped student once
    result = extractor.extract(nib.load("head.nii.gz"))
    nib.save(result["brain"], "head_brain.nii.gz")

A script that extracts many brains should call ``kdbet.retain_freed_memory()``
once first (process-wide, so importing the module does not do it).
"""
import numpy as np

from ._kdbet import ExtractionError, Model, read_image, retain_freed_memory, write_image

__all__ = ["Extractor", "Model", "ExtractionError", "read_image", "retain_freed_memory", "write_image"]

# RAS (nibabel) <-> LPS (ITK): x and y change sign.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _is_itk_image(image):
    return type(image).__module__.startswith("itk") and hasattr(image, "GetSpacing")


def _is_nibabel_image(image):
    return hasattr(image, "affine") and hasattr(image, "dataobj")


def _from_nibabel(image):
    name = image.get_filename() or "image"
    data = np.asarray(image.dataobj, dtype=np.float32)  # scl_slope / scl_inter applied
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ExtractionError(f"{name}: a {data.ndim}D image with shape {data.shape}; "
                              "brain extraction needs one 3D volume")
    linear = _RAS_TO_LPS @ image.affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if not np.all(spacing > 0):
        raise ExtractionError(f"{name}: invalid voxel spacing {tuple(spacing)}")
    direction = linear / spacing
    origin = _RAS_TO_LPS @ image.affine[:3, 3]
    # nibabel indexes [i, j, k] (i fastest on disk); ITK arrays are [k, j, i].
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    return array, tuple(spacing), tuple(origin), tuple(direction.ravel())


def _to_nibabel(array, like, dtype):
    import nibabel

    out = nibabel.Nifti1Image(np.asarray(array).transpose(2, 1, 0).astype(dtype, copy=False), like.affine)
    out.header.set_xyzt_units("mm", "sec")
    return out


def _from_itk(image):
    import itk

    array = np.ascontiguousarray(itk.array_view_from_image(image), dtype=np.float32)
    direction = np.asarray(itk.array_from_matrix(image.GetDirection()), dtype=float)
    return array, tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(direction.ravel())


def _to_itk(array, like):
    import itk

    out = itk.image_from_array(np.ascontiguousarray(array))
    out.CopyInformation(like)
    return out


class Extractor:
    """Loads the student (and, when asked for, the teacher) once, for many volumes.

    model, teacher_model: model files (default: the shipped ones);
    device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N";
    threads: CPU threads (0: all cores).
    """

    def __init__(self, model="", teacher_model="", device="auto", threads=0):
        self.student = Model(model, "student", device, threads)
        self._teacher_file = teacher_model
        self._device = device
        self._threads = threads
        self._teacher = None

    @property
    def teacher(self):
        if self._teacher is None:
            self._teacher = Model(self._teacher_file, "teacher", self._device, self._threads)
        return self._teacher

    @staticmethod
    def _unpack(image, spacing, origin, direction):
        if _is_itk_image(image):
            return _from_itk(image), "itk"
        if _is_nibabel_image(image):
            return _from_nibabel(image), "nibabel"
        array = np.asarray(image)
        if array.dtype != np.float32 or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array, dtype=np.float32)
        return (array, spacing, origin, direction), "numpy"

    @staticmethod
    def _pack(array, kind, like, dtype):
        if kind == "itk":
            return _to_itk(array, like)
        if kind == "nibabel":
            return _to_nibabel(array, like, dtype)
        return array

    def extract(
        self, image, spacing=None, origin=None, direction=None, threshold=0.5, mirror=False, border=0.0, refine=False
    ):
        """{'mask': uint8 0/1, 'probability': float32, 'brain': float32} on the input's grid.

        mirror: test-time augmentation, the network's output averaged over the head as is
        and mirrored left-right (as kdbet extract --mirror; twice the network time).
        border: move the mask's border out (> 0) or in (< 0) by this many mm (as --border).
        refine: the fine stage at 1 mm for inputs finer than the 2 mm working grid, with the
        shipped refiner (as kdbet extract --refine; experimental, off by default).
        """
        (array, spacing, origin, direction), kind = self._unpack(image, spacing, origin, direction)
        result = self.student.extract(array, spacing, origin, direction, threshold, mirror, border, refine)
        return {
            "mask": self._pack(result["mask"], kind, image, np.uint8),
            "probability": self._pack(result["probability"], kind, image, np.float32),
            "brain": self._pack(result["brain"], kind, image, np.float32),
        }

    def predict_brain(self, image, spacing=None, origin=None, direction=None, mirror=False):
        """The teacher's brain-only image (float32, input units) on the input's grid; mirror as for extract."""
        (array, spacing, origin, direction), kind = self._unpack(image, spacing, origin, direction)
        return self._pack(
            self.teacher.predict_brain(array, spacing, origin, direction, mirror), kind, image, np.float32
        )
