"""Hostile NIfTI-1 files made from one valid head: every header field the
reader trusts, set to what an attacker or a broken converter writes; and
MetaImage, NRRD and .hdr/.img pair files of the same head, damaged alike.

Each variant is (name, expectation, bytes-making function). Expectations:
"refuse" (exit 1 or 2, one error line naming the file, no output), "accept"
(exit 0, a mask), "either" (a legal but odd header: either, never a crash).
"""
import gzip
import math
import struct
import zlib

import numpy as np

HEADER_BYTES = 348
# Offsets of the NIfTI-1 header fields (nifti1.h).
DIM = 40
DATATYPE = 70
BITPIX = 72
PIXDIM = 76
VOX_OFFSET = 108
SCL_SLOPE = 112
SCL_INTER = 116
QFORM_CODE = 252
SFORM_CODE = 254
QUATERN = 256  # b, c, d, then qoffset x, y, z
SROW = 280  # srow_x, srow_y, srow_z: 4 floats each
MAGIC = 344

NAN = float("nan")
INF = float("inf")


def base_volume(shape=(40, 48, 36), spacing=4.0):
    """A head-like volume: a bright ellipsoid (brain) in a darker shell (scalp)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[::-1]], indexing="ij")
    radius = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    volume = np.where(radius < 0.7, 400.0, np.where(radius < 0.85, 150.0, 0.0)).astype(np.float32)
    return volume.transpose(2, 1, 0).copy(order="F"), spacing  # [x, y, z], x fastest on disk


def header(shape, spacing, datatype=16, bitpix=32):
    h = bytearray(HEADER_BYTES)
    struct.pack_into("<i", h, 0, HEADER_BYTES)
    struct.pack_into("<8h", h, DIM, 3, *shape, 1, 1, 1, 1)
    struct.pack_into("<hh", h, DATATYPE, datatype, bitpix)
    struct.pack_into("<8f", h, PIXDIM, 1.0, spacing, spacing, spacing, 1, 0, 0, 0)
    struct.pack_into("<f", h, VOX_OFFSET, 352.0)
    struct.pack_into("<ff", h, SCL_SLOPE, 1.0, 0.0)
    struct.pack_into("<hh", h, QFORM_CODE, 1, 1)
    # RAS axes, centred.
    half = [-(n - 1) * spacing / 2 for n in shape]
    struct.pack_into("<6f", h, QUATERN, 0, 0, 0, *half)
    struct.pack_into("<12f", h, SROW, spacing, 0, 0, half[0], 0, spacing, 0, half[1], 0, 0, spacing, half[2])
    h[MAGIC:MAGIC + 4] = b"n+1\0"
    return h


def assemble(h, data, extension=b"\0\0\0\0", compress=True):
    raw = bytes(h) + extension + data
    return gzip.compress(raw, compresslevel=1) if compress else raw


def variants():
    """All hostile variants: (name, expectation, function returning the file's bytes)."""
    volume, spacing = base_volume()
    shape = volume.shape
    data = volume.tobytes(order="F")
    out = []

    def add(name, expectation, patch=None, data_bytes=None, compress=True, extension=b"\0\0\0\0", base=None):
        def make():
            h = header(shape, spacing) if base is None else base()
            if patch:
                patch(h)
            return assemble(h, data if data_bytes is None else data_bytes, extension, compress)

        out.append((name, expectation, make))

    add("valid", "accept")
    add("valid-plain", "accept", compress=False)

    # Voxel spacing (pixdim) and the affine built from it.
    for axis in (1, 2, 3):
        for value, expectation in ((0.0, "refuse"), (-2.0, "refuse"), (NAN, "refuse"), (INF, "refuse"),
                                   (1e-30, "refuse"), (1e30, "refuse"), (1e6, "refuse"), (3.4e38, "refuse")):
            def patch(h, axis=axis, value=value):
                struct.pack_into("<f", h, PIXDIM + 4 * axis, value)
                struct.pack_into("<h", h, SFORM_CODE, 0)  # the qform (pixdim) decides

            add(f"pixdim{axis}={value:g}", expectation, patch)

    # Affine (sform) entries.
    for row in range(3):
        for column in range(4):
            for value in (NAN, INF, 1e30):
                def patch(h, row=row, column=column, value=value):
                    struct.pack_into("<f", h, SROW + 16 * row + 4 * column, value)
                    struct.pack_into("<h", h, QFORM_CODE, 0)

                add(f"srow[{row}][{column}]={value:g}", "refuse", patch)
    add("sform-zero", "refuse", lambda h: (struct.pack_into("<12f", h, SROW, *([0.0] * 12)),
                                           struct.pack_into("<h", h, QFORM_CODE, 0)))
    add("sform-sheared", "refuse", lambda h: (struct.pack_into("<f", h, SROW + 4, 3.0),
                                              struct.pack_into("<h", h, QFORM_CODE, 0)))
    add("sform-singular", "refuse", lambda h: (struct.pack_into("<4f", h, SROW + 16, 4.0, 0, 0, 0),
                                               struct.pack_into("<h", h, QFORM_CODE, 0)))

    # Quaternion (qform).
    for index, name in enumerate(("b", "c", "d")):
        for value, expectation in ((NAN, "refuse"), (INF, "refuse"), (1.5, "refuse"), (0.5, "accept")):
            def patch(h, index=index, value=value):
                struct.pack_into("<f", h, QUATERN + 4 * index, value)
                struct.pack_into("<h", h, SFORM_CODE, 0)

            add(f"quatern_{name}={value:g}", expectation, patch)
    for index, name in enumerate(("x", "y", "z")):
        for value in (NAN, INF, 1e30):
            def patch(h, index=index, value=value):
                struct.pack_into("<f", h, QUATERN + 12 + 4 * index, value)
                struct.pack_into("<h", h, SFORM_CODE, 0)

            add(f"qoffset_{name}={value:g}", "refuse", patch)
    add("qfac=0", "accept", lambda h: (struct.pack_into("<f", h, PIXDIM, 0.0), struct.pack_into("<h", h, SFORM_CODE, 0)))
    add("qfac=-1", "accept", lambda h: (struct.pack_into("<f", h, PIXDIM, -1.0), struct.pack_into("<h", h, SFORM_CODE, 0)))
    add("no-orientation", "refuse", lambda h: struct.pack_into("<hh", h, QFORM_CODE, 0, 0))
    for code in (-1, 5, 999):
        add(f"sform_code={code}", "either", lambda h, code=code: struct.pack_into("<h", h, SFORM_CODE, code))

    # Dimensions.
    for value in (0, -1, 1, 2, 4, 5, 7, 8, 100):
        # dim[4..7] are 1: 4D to 7D files holding one volume are fine.
        add(f"dim0={value}", "accept" if value in (4, 5, 7) else "refuse",
            lambda h, value=value: struct.pack_into("<h", h, DIM, value))
    for axis in (1, 2, 3):
        for value in (0, -1, -32768, 1, 7, 1000, 32767):
            add(f"dim{axis}={value}", "refuse", lambda h, axis=axis, value=value: struct.pack_into("<h", h, DIM + 2 * axis, value))
    add("dims-4d-1-volume", "accept", lambda h: struct.pack_into("<h", h, DIM, 4))
    add("dims-4d-2-volumes", "refuse", lambda h: struct.pack_into("<5h", h, DIM, 4, shape[0], shape[1], shape[2] // 2, 2))
    add("dims-huge-product", "refuse", lambda h: struct.pack_into("<4h", h, DIM, 3, 32767, 32767, 32767))
    add("dims-1000-cubed", "refuse", lambda h: struct.pack_into("<4h", h, DIM, 3, 1000, 1000, 1000))

    # Data type and bits per voxel.
    for datatype, bitpix in ((0, 32), (1, 1), (32, 64), (128, 24), (2304, 32), (1792, 128), (99, 32), (-16, 32),
                             (16, 64), (16, 8), (64, 32), (16, 0), (16, -32), (4, 32), (2, 16)):
        add(f"datatype={datatype},bitpix={bitpix}", "refuse",
            lambda h, datatype=datatype, bitpix=bitpix: struct.pack_into("<hh", h, DATATYPE, datatype, bitpix))

    # Voxel offset.
    for value in (0.0, -1.0, NAN, INF, 100.0, 344.0, 351.0, 1e30, 1e9, 353.0):
        add(f"vox_offset={value:g}", "refuse", lambda h, value=value: struct.pack_into("<f", h, VOX_OFFSET, value))
    add("vox_offset=356", "refuse", lambda h: struct.pack_into("<f", h, VOX_OFFSET, 356.0))

    # Intensity scaling.
    for slope, inter, expectation in ((NAN, 0.0, "refuse"), (INF, 0.0, "refuse"), (1.0, NAN, "refuse"),
                                      (1.0, INF, "refuse"), (0.0, 0.0, "accept"), (1e38, 0.0, "refuse"),
                                      (-1.0, 0.0, "either"), (2.0, 10.0, "accept")):
        add(f"scl={slope:g},{inter:g}", expectation,
            lambda h, slope=slope, inter=inter: struct.pack_into("<ff", h, SCL_SLOPE, slope, inter))

    # Header size, magic, extensions.
    for value in (0, 347, 349, 540, -1):
        add(f"sizeof_hdr={value}", "refuse", lambda h, value=value: struct.pack_into("<i", h, 0, value))
    for magic in (b"ni1\0", b"n+2\0", b"xxxx", b"\0\0\0\0"):
        add(f"magic={magic!r}", "refuse" if magic != b"\0\0\0\0" else "either",
            lambda h, magic=magic: h.__setitem__(slice(MAGIC, MAGIC + 4), magic))
    add("extension-flag-bad-size", "refuse", extension=b"\1\0\0\0" + struct.pack("<ii", 1 << 30, 4),
        patch=lambda h: struct.pack_into("<f", h, VOX_OFFSET, 360.0))

    # Voxel data: truncated, NaN, longer than declared, empty.
    add("data-truncated-half", "refuse", data_bytes=data[: len(data) // 2])
    add("data-truncated-1-byte", "refuse", data_bytes=data[:-1])
    add("data-empty", "refuse", data_bytes=b"")
    add("data-truncated-plain", "refuse", data_bytes=data[: len(data) // 2], compress=False)
    nan_data = bytearray(data)
    struct.pack_into("<f", nan_data, len(data) // 2, NAN)
    add("data-one-nan", "refuse", data_bytes=bytes(nan_data))
    add("data-all-zero", "refuse", data_bytes=bytes(len(data)))
    add("data-constant", "refuse", data_bytes=np.full(volume.shape, 7.0, np.float32).tobytes(order="F"))
    add("data-trailing-bytes", "either", data_bytes=data + b"\0" * 1000)
    huge = np.where(volume > 0, 3e38, 0).astype(np.float32).tobytes(order="F")
    add("data-near-float-max", "either", data_bytes=huge)
    return out


def file_bytes_corrupt():
    """Container-level damage: not NIfTI-header variants."""
    volume, spacing = base_volume()
    good = assemble(header(volume.shape, spacing), volume.tobytes(order="F"))
    return [
        ("gzip-truncated", "refuse", lambda: good[: len(good) // 2]),
        ("gzip-garbage-tail", "refuse", lambda: good[:-8] + b"\xff" * 8),
        ("gzip-header-only", "refuse", lambda: good[:10]),
        ("empty-file", "refuse", lambda: b""),
        ("random-bytes", "refuse", lambda: bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8))),
    ]


def metaimage_header(shape, spacing, data_file="LOCAL", **fields):
    """A MetaImage header for a float volume; `fields` replace or add entries."""
    half = [-(n - 1) * spacing / 2 for n in shape]
    entries = {
        "ObjectType": "Image", "NDims": "3", "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
        "CompressedData": "False", "TransformMatrix": "1 0 0 0 1 0 0 0 1",
        "Offset": " ".join(str(v) for v in half), "AnatomicalOrientation": "RAI",
        "ElementSpacing": f"{spacing} {spacing} {spacing}", "DimSize": " ".join(str(n) for n in shape),
        "ElementType": "MET_FLOAT",
    }
    entries.update(fields)
    entries["ElementDataFile"] = data_file  # always last
    return "".join(f"{key} = {value}\n" for key, value in entries.items()).encode()


def other_format_variants():
    """MetaImage (.mha, .mhd + .raw), NRRD (.nrrd, .nhdr + .raw) and
    Analyze/NIfTI pairs (.hdr + .img):
    each make() returns {extension: bytes}, the first entry the file given to
    kdbet; b"{stem}" in a header stands for the variant's file name stem."""
    volume, spacing = base_volume()
    shape = volume.shape
    data = volume.tobytes(order="F")
    packed = zlib.compress(data, 1)
    nan_data = bytearray(data)
    struct.pack_into("<f", nan_data, len(data) // 2, NAN)
    out = []

    def mha(name, expectation, voxels=data, **fields):
        out.append((name, expectation, lambda: {".mha": metaimage_header(shape, spacing, **fields) + voxels}))

    mha("mha-valid", "accept")
    mha("mha-compressed-valid", "accept", packed, CompressedData="True", CompressedDataSize=str(len(packed)))
    mha("mha-truncated", "refuse", data[: len(data) // 2])
    mha("mha-one-byte-short", "refuse", data[:-1])
    mha("mha-compressed-truncated", "refuse", packed[: len(packed) // 2], CompressedData="True")
    mha("mha-compressed-garbage", "refuse", b"\x78\x01" + bytes(range(256)) * 40, CompressedData="True")
    mha("mha-compressed-empty", "refuse", b"", CompressedData="True")
    mha("mha-negative-spacing", "refuse", ElementSpacing=f"-{spacing} {spacing} {spacing}")
    mha("mha-zero-spacing", "refuse", ElementSpacing=f"{spacing} 0 {spacing}")
    mha("mha-nan-spacing", "refuse", ElementSpacing=f"{spacing} nan {spacing}")
    mha("mha-negative-element-size", "refuse", ElementSize=f"{spacing} {spacing} -{spacing}")
    mha("mha-non-orthogonal", "refuse", TransformMatrix="1 0.5 0 0 1 0 0 0 1")
    mha("mha-nan-direction", "refuse", TransformMatrix="1 0 0 0 nan 0 0 0 1")
    mha("mha-nan-voxel", "refuse", bytes(nan_data))
    mha("mha-dims-huge", "refuse", DimSize="100000 100000 100000")
    mha("mha-dims-2d", "refuse", NDims="2", DimSize="40 48")
    mha("mha-text-voxels", "refuse", b"1 2 3\n", BinaryData="False")
    mha("mha-data-file-list", "refuse", data_file="LIST")
    mha("mha-data-file-pattern", "refuse", data_file="slice%03d.raw 1 36 1")
    mha("mha-data-file-dev-zero", "refuse", b"", data_file="/dev/zero")
    mha("mha-data-file-missing", "refuse", b"", data_file="nowhere.raw")
    mha("mha-header-size-beyond-file", "refuse", HeaderSize="100000000")

    def mhd(name, expectation, raw=data, **fields):
        out.append((name, expectation,
                    lambda: {".mhd": metaimage_header(shape, spacing, data_file="{stem}.raw", **fields), ".raw": raw}))

    mhd("mhd-valid", "accept")
    mhd("mhd-truncated-raw", "refuse", data[: len(data) // 3])
    mhd("mhd-empty-raw", "refuse", b"")
    mhd("mhd-header-size-minus-one", "accept", b"padding" + data, HeaderSize="-1")
    out.append(("mhd-missing-raw", "refuse",
                lambda: {".mhd": metaimage_header(shape, spacing, data_file="{stem}.raw")}))

    def pair(name, expectation, image=data, patch=None, with_image=True):
        def make():
            h = header(shape, spacing)
            h[MAGIC:MAGIC + 4] = b"ni1\0"
            struct.pack_into("<f", h, VOX_OFFSET, 0.0)
            if patch:
                patch(h)
            files = {".hdr": bytes(h)}
            if with_image:
                files[".img"] = image
            return files
        out.append((name, expectation, make))

    def nrrd_header(encoding="raw", data_file=None, directions="(4,0,0) (0,4,0) (0,0,4)"):
        text = (f"NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\n"
                f"sizes: {shape[0]} {shape[1]} {shape[2]}\nspace directions: {directions}\nendian: little\n"
                f"encoding: {encoding}\nspace origin: (0,0,0)\n")
        if data_file:
            text += f"data file: {data_file}\n"
        return (text + "\n").encode()

    def nrrd(name, expectation, voxels=data, **header_fields):
        out.append((name, expectation, lambda: {".nrrd": nrrd_header(**header_fields) + voxels}))

    def nhdr(name, expectation, raw=data, data_file="{stem}.raw"):
        out.append((name, expectation, lambda: {".nhdr": nrrd_header(data_file=data_file), ".raw": raw}))

    packed_gzip = gzip.compress(data, 1)
    nrrd("nrrd-valid", "accept")
    nrrd("nrrd-gzip-valid", "accept", packed_gzip, encoding="gzip")
    nrrd("nrrd-truncated", "refuse", data[: len(data) // 2])
    nrrd("nrrd-gzip-truncated", "refuse", packed_gzip[: len(packed_gzip) // 2], encoding="gzip")
    nrrd("nrrd-nan-direction", "refuse", directions="(nan,0,0) (0,4,0) (0,0,4)")
    nrrd("nrrd-sheared", "refuse", directions="(4,2,0) (0,4,0) (0,0,4)")
    nrrd("nrrd-zero-direction", "refuse", directions="(0,0,0) (0,4,0) (0,0,4)")
    nrrd("nrrd-nan-voxel", "refuse", bytes(nan_data))
    nhdr("nhdr-valid", "accept")
    nhdr("nhdr-truncated-raw", "refuse", data[:1000])
    nhdr("nhdr-data-file-dev-zero", "refuse", data_file="/dev/zero")
    nhdr("nhdr-data-file-missing", "refuse", data_file="nowhere.raw")
    nhdr("nhdr-data-file-list", "refuse", data_file="LIST")
    nhdr("nhdr-data-file-pattern", "refuse", data_file="slice%03d.raw 1 36 1")

    pair("pair-valid", "accept")
    pair("pair-truncated-img", "refuse", data[: len(data) // 2])
    pair("pair-empty-img", "refuse", b"")
    pair("pair-nan-voxel", "refuse", bytes(nan_data))
    pair("pair-missing-img", "refuse", with_image=False)
    pair("pair-bitpix-disagrees", "refuse", patch=lambda h: struct.pack_into("<h", h, BITPIX, 64))
    pair("pair-negative-pixdim", "either", patch=lambda h: struct.pack_into("<f", h, PIXDIM + 4, -spacing))
    return out


def all_variants():
    return variants() + file_bytes_corrupt() + other_format_variants()


if __name__ == "__main__":
    print(len(all_variants()), "variants")
