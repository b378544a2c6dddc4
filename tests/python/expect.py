"""Independent expectations for the tests: what a standard encoder (Pillow's libjpeg, ffmpeg's
libx264) achieves on the same picture with the same parameters, and the address of a buffer
(to tell a zero-copy view from a copy)."""

import ctypes
import shutil
import subprocess
from io import BytesIO

from PIL import Image, JpegImagePlugin

from conftest import decode_h264


def jpeg_reference(picture, jpeg):
    """`picture` encoded by Pillow (libjpeg) with the quantisation tables and chroma
    subsampling that the JFIF `jpeg` declares, decoded again: what a standard encoder reaches
    with the same parameters."""
    ours = Image.open(BytesIO(jpeg))
    buf = BytesIO()
    picture.convert("RGB").save(buf, "JPEG", qtables=ours.quantization,
                                subsampling=JpegImagePlugin.get_sampling(ours))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def x264_reference(picture, crf, fullcolor, qp=None):
    """`picture` encoded as one key frame by ffmpeg's libx264 (ultrafast, zerolatency, CRF
    `crf` or else the constant quantizer `qp`, 4:2:0 or 4:4:4, BT.709 limited range as ours
    is), decoded again by ffmpeg: what x264 itself reaches on the picture at that setting."""
    rate = ["-crf", str(crf)] if qp is None else ["-qp", str(qp)]
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg must be installed (make test installs it)"
    w, h = picture.size
    pix_fmt = "yuv444p" if fullcolor else "yuv420p"
    stream = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-i", "pipe:0",
         # Box-filtered chroma (area), as our converter averages each 2x2 block.
         "-vf", f"scale=out_color_matrix=bt709:out_range=tv:flags=area+accurate_rnd,"
                f"format={pix_fmt}",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", *rate,
         "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
         "-color_range", "tv", "-f", "h264", "pipe:1"],
        input=picture.convert("RGB").tobytes(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        check=True, timeout=60,
    ).stdout
    (frame,) = decode_h264(stream, w, h)
    return frame


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def buffer_address(obj):
    """The address of the first byte that `obj`'s buffer protocol exposes (read-only is fine)."""
    view = _PyBuffer()
    if _get_buffer(obj, ctypes.byref(view), 0) != 0:
        raise TypeError(f"{type(obj).__name__} exposes no buffer")
    try:
        return view.buf
    finally:
        _release_buffer(ctypes.byref(view))
