"""Writes the bad-input image corpus (tests/corpus/images/), deterministically.

Each file is an image a caller could send: hostile (decompression bombs, extreme aspect
ratios, truncated or corrupted files, wrong magic) or merely unusual (CMYK, 16-bit, palette,
EXIF-rotated, animated, alpha). tests/corpus/cases.json says what the server must answer to
each. Run with Pillow installed:  python tools/corpus/make_images.py
"""

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "images"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, depth: int, colour: int, rows: bytes, level: int = 9) -> bytes:
    """A PNG written by hand, so that headers can say what no encoder would write."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, level)) + chunk(b"IEND", b"")


def black_gray_png(width: int, height: int) -> bytes:
    return png(width, height, 8, 0, (b"\x00" + b"\x00" * width) * height)


def pillow(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def disc(size: int = 80, mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (size, size), (30, 60, 200))
    for y in range(size):
        for x in range(size):
            if (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2:
                image.putpixel((x, y), (250, 200, 0))
    return image.convert(mode)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = {}
    good = pillow(disc(), "PNG")
    files["wide-40000000x1.png"] = black_gray_png(40_000_000, 1)
    files["tall-1x40000000.png"] = png(1, 40_000_000, 8, 0, b"\x00\x00" * 40_000_000)
    files["wide-20000x2.png"] = black_gray_png(20_000, 2)
    # Headers that claim far more pixels than the limit, with almost no data behind them.
    files["bomb-20000x20000.png"] = png(20_000, 20_000, 8, 0, b"\x00" * 1024)
    files["bomb-65535x65535.bmp"] = b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 65_535, 65_535, 1, 24, 0, 0, 2835, 2835, 0, 0
    )
    files["zero-width.png"] = png(0, 10, 8, 0, b"")
    files["truncated.png"] = good[: len(good) // 2]
    corrupt = bytearray(good)
    corrupt[40] ^= 0xFF
    files["bad-crc.png"] = bytes(corrupt)
    files["truncated.jpg"] = pillow(disc(), "JPEG", quality=90)[:300]
    files["text.txt"] = b"this is not an image, only a caption\n"
    files["png-magic-only.png"] = b"\x89PNG\r\n\x1a\n"
    files["truncated.webp"] = pillow(disc(), "WEBP")[:40]
    files["garbage.tiff"] = b"II*\x00" + bytes(range(256)) * 4
    # Unusual but valid: served like any other image.
    files["cmyk.jpg"] = pillow(disc(mode="CMYK"), "JPEG", quality=90)
    files["gray16.png"] = pillow(disc().convert("I;16"), "PNG")
    files["palette.png"] = pillow(disc().convert("P"), "PNG")
    files["gray-alpha.png"] = pillow(disc().convert("LA"), "PNG")
    files["rgba.webp"] = pillow(disc().convert("RGBA"), "WEBP", lossless=True)
    rotated = disc()
    exif = rotated.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display.
    files["exif-rotated.jpg"] = pillow(rotated, "JPEG", exif=exif.tobytes())
    frames = [disc(), disc().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["animated.gif"] = buffer.getvalue()
    files["tiny-1x1.png"] = pillow(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")
    files["wide-3000x1.png"] = black_gray_png(3000, 1)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
