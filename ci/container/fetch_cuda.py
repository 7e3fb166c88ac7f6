"""Fetches the CUDA 13.0 user-space libraries infermeter's CUDA engine loads at run
time (NVRTC and its builtins, cuBLAS and cuBLASLt) from NVIDIA's PyPI wheels, at the
versions ci/setup.sh tests with, into DEST/lib, and ptxas (the GPU checks' resource
check of the assembled kernels) into DEST/bin: the CUDA image's fetch stage.

    python3 fetch_cuda.py DEST
"""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

WHEELS = {
    "nvidia-cuda-nvrtc==13.0.88": ["libnvrtc.so.13", "libnvrtc-builtins.so.13.0"],
    "nvidia-cublas==13.0.2.14": ["libcublas.so.13", "libcublasLt.so.13"],
    "nvidia-cuda-nvcc==13.0.88": ["ptxas"],
}


def main() -> int:
    if not os.environ.get("PIP_CERT"):
        os.environ.pop("PIP_CERT", None)  # an unset build argument arrives empty
    dest = sys.argv[1]
    for sub in ("lib", "bin"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, libs in WHEELS.items():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "-d", tmp, spec],
                check=True,
            )
            name = spec.split("==")[0].replace("-", "_")
            wheel = glob.glob(os.path.join(tmp, f"{name}-*.whl"))[0]
            with zipfile.ZipFile(wheel) as z:
                for lib in libs:
                    sub = "bin" if lib == "ptxas" else "lib"
                    out = os.path.join(dest, sub, lib)
                    with z.open(f"nvidia/cu13/{sub}/{lib}") as src, open(out, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
                    if sub == "bin":
                        os.chmod(out, 0o755)
                        continue
                    # The unversioned name too, for loaders that look for it.
                    base = os.path.join(dest, sub, lib.split(".so")[0] + ".so")
                    if not os.path.exists(base):
                        os.symlink(lib, base)
            os.remove(wheel)
    print(f"fetch_cuda: {sorted(os.listdir(os.path.join(dest, 'lib')))}, ptxas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
