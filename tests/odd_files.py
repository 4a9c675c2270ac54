"""Files nobody here made, written by the tests (issue 26): a bomb inside a container, a pixel format Pillow does not
implement, a header that claims a huge image, files that make a decoder warn in Python or print from C."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def chunk(kind: bytes, data: bytes) -> bytes:
    "One PNG chunk: length, type, data, CRC."
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(w: int, h: int) -> bytes:
    "A small PNG whose header claims w x h pixels (a decompression bomb as far as Pillow can tell at open)."
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def icns_bomb() -> bytes:
    "An ICNS container whose header says 256 x 256 and whose embedded PNG says 100,000 x 100,000: `load()` finds it."
    entry = b"ic08" + struct.pack(">I", 8 + len(png := png_header(100_000, 100_000))) + png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def dds_unimplemented() -> bytes:
    "A 16 x 16 DDS file in a FourCC pixel format Pillow does not implement (`NotImplementedError` at open)."
    head = struct.pack("<4sIIIIIII", b"DDS ", 124, 0x81007, 16, 16, 0, 0, 0) + bytes(44)
    pixel_format = struct.pack("<II4s5I", 32, 4, b"XYZW", 0, 0, 0, 0, 0)
    return head + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + bytes(256)


def _photo(w: int = 50, h: int = 40, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


def apng_invalid() -> bytes:
    "A usable 50 x 40 PNG with an invalid animation chunk: Pillow decodes it and warns `Invalid APNG`."
    buf = io.BytesIO()
    _photo().save(buf, "PNG")
    png = buf.getvalue()
    return png[:33] + chunk(b"acTL", struct.pack(">II", 0, 0)) + png[33:]


def tiff_bad_deflate() -> bytes:
    "A deflate-compressed TIFF with a damaged strip: libtiff prints `ZIPDecode: Decoding error` to stderr (from C)."
    buf = io.BytesIO()
    _photo().save(buf, "TIFF", compression="tiff_deflate")
    raw = bytearray(buf.getvalue())
    raw[20:200] = b"\x55" * 180
    return bytes(raw)


ODD = {  # file -> (reason, what its detail or warning says); reason "" for a usable file
    "bomb.icns": ("huge", "DecompressionBombError"),
    "odd.dds": ("unsupported", "NotImplementedError: Unimplemented pixel format"),
    "claims.png": ("huge", "10000000000 pixels"),
    "anim.png": ("", "Invalid APNG"),
    "noisy.tif": ("unreadable", "ZIPDecode"),
}


def write_odd_files(folder: str | Path) -> Path:
    "Write the files of `ODD` into `folder`."
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in [("bomb.icns", icns_bomb()), ("odd.dds", dds_unimplemented()),
                       ("claims.png", png_header(100_000, 100_000)), ("anim.png", apng_invalid()),
                       ("noisy.tif", tiff_bad_deflate())]:
        (folder / name).write_bytes(data)
    return folder
