"""Compiles every CUDA source with nvcc, with the build's flags, for one architecture; with a
CPU-only torch, also calls the CUDA kernels' entry points.

For machines without a GPU (CI): the sources are written against the LibTorch stable ABI,
whose headers ship in every torch wheel. With a CPU-only torch the objects are then linked
with the kernels' registration (csrc/cuda/*.cpp) into a library of their own, which
tests/test_cuda_entries.py loads to call each CUDA kernel through the dispatcher with bad
arguments: no device code runs, and a crash fails the check.

    python tools/check_cuda_compile.py [--arch 90]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from setup import DEFINES, nvcc_flags  # noqa: E402


def run(name: str, command: list[str], env: dict | None = None, expect: str = "") -> bool:
    """Runs command, prints `name: ok` or its output; whether it succeeded (and printed
    ``expect``)."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    ok = result.returncode == 0 and expect in result.stdout
    print(f"{name}: {'ok' if ok else 'FAILED'}")
    if not ok:
        print(result.stdout + result.stderr, file=sys.stderr)
    return ok


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
    with tempfile.TemporaryDirectory() as tmp:
        objects = [Path(tmp) / (source.stem + ".cu.o") for source in sources]

        def compile_one(source: Path, obj: Path) -> bool:
            command = [nvcc, "-c", *cpp_extension.COMMON_NVCC_FLAGS, "-Xcompiler", "-fPIC",
                       *nvcc_flags(args.arch), *includes, str(source), "-o", str(obj)]  # fmt: skip
            return run(f"nvcc {source.relative_to(ROOT)}", command)

        # nvcc is single-threaded: one source per core.
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            compiled = list(pool.map(compile_one, sources, objects))
        print(f"{sum(compiled)} compiled, {len(sources) - sum(compiled)} failed")
        if not sources or not all(compiled):
            return 1
        if torch.version.cuda is not None:
            print("torch has CUDA: the entry points are tested on the GPU")
            return 0
        return 0 if call_entry_points(objects, includes, Path(tmp)) else 1


def call_entry_points(cu_objects: list[Path], includes: list[str], tmp: Path) -> bool:
    """Links the CUDA objects with their registration into a library and runs
    tests/test_cuda_entries.py on it."""
    registration = sorted((ROOT / "csrc" / "cuda").glob("*.cpp"))
    objects = [tmp / (source.stem + ".o") for source in registration]
    for source, obj in zip(registration, objects, strict=True):
        command = ["c++", "-c", "-fPIC", "-O1", "-std=c++17", "-DUSE_CUDA", *DEFINES,
                   *includes, str(source), "-o", str(obj)]  # fmt: skip
        if not run(f"c++ {source.relative_to(ROOT)}", command):
            return False
    library = tmp / "cuda_entries.so"
    torch_lib = Path(torch.__file__).parent / "lib"
    link = [shutil.which("nvcc"), "-shared", *map(str, objects + cu_objects),
            f"-L{torch_lib}", "-lc10", "-ltorch", "-ltorch_cpu", "-o", str(library)]  # fmt: skip
    if not run("link the CUDA kernels", link):
        return False
    env = dict(os.environ, FUSED_INPAINT_CUDA_ENTRIES=str(library))
    test = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_cuda_entries.py"),
            "-q", "-rs", "-p", "no:randomly", "-p", "no:cacheprovider", "-n", "0"]  # fmt: skip
    # Not skipped: the library must load and register the CUDA kernels.
    return run("call the CUDA entry points (tests/test_cuda_entries.py)", test, env, " passed")


if __name__ == "__main__":
    sys.exit(main())
