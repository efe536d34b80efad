"""Decodes one frame of DICOM pixel data with pydicom's decoders, and says what to install when none can.

pydicom (>= 3) decodes the native transfer syntaxes (implicit / explicit VR, little / big endian), deflated
explicit VR and RLE Lossless by itself; the compressed ones go through its decoder plugins, installed from
requirements.txt by tools/setup_env.sh:

- JPEG Baseline 8-bit (1.2.840.10008.1.2.4.50): pylibjpeg + pylibjpeg-libjpeg, or Pillow;
- JPEG Extended 12-bit (.51): pylibjpeg + pylibjpeg-libjpeg (Pillow reads only its 8-bit files);
- JPEG Lossless, process 14, any predictor (.57) or selection value 1 (.70): pylibjpeg + pylibjpeg-libjpeg;
- JPEG-LS lossless (.80) and near-lossless (.81): pyjpegls, or pylibjpeg + pylibjpeg-libjpeg;
- JPEG 2000 lossless (.90) and lossy (.91): pylibjpeg + pylibjpeg-openjpeg, or Pillow;
- RLE Lossless (1.2.840.10008.1.2.5): pydicom itself (pylibjpeg-rle is faster);
- Deflated explicit VR little endian (1.2.840.10008.1.2.1.99): pydicom itself, while reading the file.

One encoder defect is tolerated: sequential (baseline / extended) JPEG frames whose start-of-scan header has a
spectral selection other than 0..63 or a non-zero successive approximation (NEMA's WG04 sample NM1_JPLY, shipped
with pydicom as ``JPEG-lossy.dcm``). ITU-T T.81 fixes these fields at Ss = 0, Se = 63, Ah = Al = 0 for sequential
DCT, so they carry no information; when decoding such a frame fails, it is decoded again with them set so.
"""
import re
from typing import List, Optional

import numpy as np

from ..errors import UserError

#: pydicom's plugin labels, in the order their install hints are given (the ones requirements.txt installs first).
_PLUGIN_ORDER = ("pylibjpeg", "pyjpegls", "pillow", "gdcm")
#: the plugins whose packages requirements.txt installs.
_SHIPPED_PLUGINS = ("pylibjpeg", "pyjpegls")
#: pydicom's names of a plugin's requirements -> the package to ask pip for.
_PIP_NAMES = {"gdcm": "python-gdcm", "pillow": "Pillow"}


class PixelDecodeError(UserError):
    """The pixel data cannot be decoded; ``str(err)`` says why and, when a decoder is missing, what to install."""


def transfer_syntax_text(uid) -> str:
    """``"<name> (<uid>)"`` for a transfer syntax UID, e.g. ``"JPEG-LS Lossless Image Compression
    (1.2.840.10008.1.2.4.80)"``; just the UID when pydicom does not know it."""
    from pydicom.uid import UID

    uid = UID(str(uid))
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _requirement(spec: str) -> Optional[str]:
    """A pydicom requirement string ("pylibjpeg-libjpeg>=2.1", "gdcm>=3.0.10", "numpy") as a pip requirement;
    None for numpy, which is always installed."""
    name = re.split(r"[<>=!~ ]", spec.strip(), maxsplit=1)[0]
    if not name or name == "numpy":
        return None
    return _PIP_NAMES.get(name, name) + spec.strip()[len(name):]


def install_hints(decoder, shipped_only: bool = False) -> List[str]:
    """What to install for each plugin of the pydicom ``decoder`` whose dependencies are missing, e.g.
    ``["pylibjpeg>=2.0 with pylibjpeg-libjpeg>=2.1", "python-gdcm>=3.0.10"]``, the plugins requirements.txt
    installs first (``shipped_only``: only those). Read from pydicom's ``missing_dependencies``
    ("<plugin> - requires <a>, <b> and <c>")."""
    hints = []
    for line in decoder.missing_dependencies:
        label, _, requires = line.partition(" - requires ")
        if shipped_only and label not in _SHIPPED_PLUGINS:
            continue
        specs = [r for r in (_requirement(s) for s in re.split(r", | and ", requires)) if r] if requires else []
        if specs:
            rank = _PLUGIN_ORDER.index(label) if label in _PLUGIN_ORDER else len(_PLUGIN_ORDER)
            hints.append((rank, label, " with ".join(specs)))
    return [hint for _, _, hint in sorted(hints)]


def _missing_decoder_message(uid, decoder) -> str:
    hints = install_hints(decoder)
    what = ("; install " + ", or ".join(hints)) if hints else ""
    return (f"no decoder is installed for its transfer syntax {transfer_syntax_text(uid)}{what} "
            "(tools/setup_env.sh installs the pylibjpeg and pyjpegls decoders listed in requirements.txt)")


def fixed_sequential_jpeg(frame: bytes) -> Optional[bytes]:
    """``frame`` (one JPEG code stream) with the scan headers of a sequential DCT image (SOF0 / SOF1) set to
    Ss = 0, Se = 63, Ah = Al = 0 as ITU-T T.81 requires; None when the stream is not sequential DCT or nothing
    needed changing."""
    data = bytearray(frame)
    if data[:2] != b"\xff\xd8":
        return None
    pos, sequential, changed = 2, False, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:  # entropy-coded data: jump to the next 0xFF
            next_ff = data.find(b"\xff", pos)
            if next_ff < 0:
                break
            pos = next_ff
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x00 or 0xD0 <= marker <= 0xD7:  # stuffed 0xFF in entropy-coded data, restart marker
            pos += 2
            continue
        if marker == 0xD9:  # end of image
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (0xC0, 0xC1):
            sequential = True
        elif marker in (0xC2, 0xC3) or (0xC5 <= marker <= 0xCF and marker not in (0xC8, 0xCC)):
            return None  # progressive, lossless, hierarchical or arithmetic: the fields mean something there
        elif marker == 0xDA and sequential:
            spectral = pos + 5 + 2 * data[pos + 4]  # after Ls, Ns and Ns (Cs, Td/Ta) pairs
            if spectral + 3 <= len(data) and data[spectral:spectral + 3] != b"\x00\x3f\x00":
                data[spectral:spectral + 3] = b"\x00\x3f\x00"
                changed = True
        pos += 2 + length
    return bytes(data) if changed else None


def _decode_fixed_jpeg(ds, index: Optional[int]) -> Optional[np.ndarray]:
    """Frame ``index`` (None: the only one) of a JPEG Baseline / Extended dataset, decoded after
    :func:`fixed_sequential_jpeg`; None when the frame needs no fixing."""
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate, get_frame
    from pydicom.pixels import pixel_array

    num_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frame = get_frame(ds.PixelData, index or 0, number_of_frames=num_frames)
    fixed = fixed_sequential_jpeg(frame)
    if fixed is None:
        return None
    single = Dataset()  # the image pixel module with just the fixed frame; ``ds`` itself is left as it is
    single.file_meta = ds.file_meta
    for element in ds.group_dataset(0x0028):
        if element.keyword != "NumberOfFrames":
            single.add(element)
    single.PixelData = encapsulate([fixed])
    single["PixelData"].VR = "OB"
    return pixel_array(single)


def decode_frame(ds, index: Optional[int] = None) -> np.ndarray:
    """Frame ``index`` of the pydicom dataset ``ds`` (None: a single-frame file's only frame) as pydicom's
    decoders give it: (rows, columns) for one sample per pixel, (rows, columns, samples) otherwise, YBR
    colour converted to RGB, values as stored (no rescale / window).

    Raises :class:`PixelDecodeError` naming the transfer syntax: with what to install when no decoder for it
    is installed; with the decoders' own errors (and any decoder that is not installed) when the data is bad.
    """
    from pydicom.pixels import pixel_array
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

    uid = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    decoder = None
    if uid:
        uid = UID(str(uid))
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise PixelDecodeError(f"pydicom has no decoder for its transfer syntax {transfer_syntax_text(uid)}"
                                   ) from None
        if not decoder.is_available:
            raise PixelDecodeError(_missing_decoder_message(uid, decoder))
    try:
        return pixel_array(ds, index=index)
    except Exception as err:  # decoders raise many types; the caller gets one clear error
        first = err
    if uid in (JPEGBaseline8Bit, JPEGExtended12Bit):
        try:
            fixed = _decode_fixed_jpeg(ds, index)
        except Exception:
            fixed = None
        if fixed is not None:
            return fixed
    syntax = f" ({transfer_syntax_text(uid)})" if uid else ""
    lines = [line.strip() for line in str(first).splitlines() if line.strip()] or [""]
    message = " ".join([lines[0], "; ".join(lines[1:])]).strip()  # pydicom lists each plugin's error on a line
    problem = f"cannot decode the DICOM pixel data{syntax}: {type(first).__name__}: {message}"
    hints = install_hints(decoder, shipped_only=True) if decoder is not None and decoder.is_encapsulated else []
    if hints:
        problem += "; decoders that may read it but are not installed: " + ", or ".join(hints)
    raise PixelDecodeError(problem)
