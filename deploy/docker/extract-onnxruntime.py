"""Copies ONNX Runtime's shared libraries out of an onnxruntime or onnxruntime-gpu wheel.

    python extract-onnxruntime.py WHEEL_DIR DEST

Used by the image builds: the wheel comes from `pip download`, and only its `libonnxruntime*.so*`
files (the runtime, and for the GPU wheel its CUDA and shared provider libraries) are kept.
"""

import glob
import os
import shutil
import sys
import zipfile


def main() -> None:
    wheel_dir, dest = sys.argv[1], sys.argv[2]
    wheels = glob.glob(os.path.join(wheel_dir, "onnxruntime*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one onnxruntime wheel in {wheel_dir}, found {wheels}")
    os.makedirs(dest, exist_ok=True)
    copied = []
    with zipfile.ZipFile(wheels[0]) as archive:
        for name in archive.namelist():
            base = os.path.basename(name)
            if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
                with archive.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                copied.append(base)
    if not any(base.startswith("libonnxruntime.so.") for base in copied):
        sys.exit(f"{wheels[0]} holds no libonnxruntime.so.*")
    print("extracted", ", ".join(sorted(copied)))


if __name__ == "__main__":
    main()
