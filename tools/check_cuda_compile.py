"""Compiles every CUDA source with nvcc, compile only, for one architecture.

For machines without a GPU and with a CPU-only torch (CI): the sources are written
against the LibTorch stable ABI, whose headers ship in every torch wheel.

    python tools/check_cuda_compile.py [--arch 90]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from setup import TORCH_TARGET_VERSION  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="90", help="compute capability, e.g. 90")
    args = parser.parse_args()
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("nvcc not found on PATH", file=sys.stderr)
        return 1
    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    includes += [f"-I{sysconfig.get_paths()['include']}", f"-I{ROOT / 'csrc'}"]
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            command = [
                nvcc,
                "-c",
                "-std=c++17",
                "-O3",
                "-DUSE_CUDA",
                f"-DTORCH_TARGET_VERSION={TORCH_TARGET_VERSION}",
                f"-gencode=arch=compute_{args.arch},code=sm_{args.arch}",
                *includes,
                str(source),
                "-o",
                str(Path(tmp) / (source.stem + ".o")),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else "FAILED"
            print(f"nvcc {source.relative_to(ROOT)}: {status}")
            if result.returncode != 0:
                print(result.stdout + result.stderr, file=sys.stderr)
                failed.append(source)
    print(f"{len(sources) - len(failed)} compiled, {len(failed)} failed")
    return 1 if failed or not sources else 0


if __name__ == "__main__":
    sys.exit(main())
