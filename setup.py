"""Builds fused_inpaint._C: CPU kernels always, CUDA kernels when torch and nvcc have CUDA.

Environment:
  FUSED_INPAINT_CUDA_ARCHS       compute capabilities, default "80;90" (+ PTX of the newest)
  FUSED_INPAINT_SKIP_CUDA_BUILD  1: build the CPU kernels only
  FUSED_INPAINT_NO_EXTENSION     1: pure Python install (the triton and torch backends)
  FUSED_INPAINT_SANITIZE         1: the CPU kernels only, under AddressSanitizer and
                                 UndefinedBehaviorSanitizer (float-cast-overflow included,
                                 no -fwrapv), for tools/sanitize.sh; load it with libasan
                                 preloaded
  MAX_JOBS                       parallel compile jobs, default min(cores, 8)
"""

import os
from glob import glob

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
# Oldest torch whose stable ABI the sources target (the extension loads on it and newer).
TORCH_TARGET_VERSION = "0x020a000000000000"
PY_LIMITED_API = "0x030a0000"
DEFINES = [f"-DTORCH_TARGET_VERSION={TORCH_TARGET_VERSION}", f"-DPy_LIMITED_API={PY_LIMITED_API}"]
# Every report aborts; -fno-wrapv undoes Python's -fwrapv, which defines signed overflow.
SANITIZE_FLAGS = [
    "-fsanitize=address,undefined,float-cast-overflow",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-fno-wrapv",
    "-g",
    "-O1",
]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() not in ("", "0", "false", "no")


def cuda_arch_flags(archs: str) -> list[str]:
    """-gencode flags for each arch in "80;90", plus PTX of the newest for future GPUs."""
    numbers = sorted(
        {a.strip().replace(".", "") for a in archs.replace(",", ";").split(";") if a.strip()},
        key=int,
    )
    if not numbers:
        raise ValueError(f"FUSED_INPAINT_CUDA_ARCHS names no architecture: {archs!r}")
    flags = []
    for n in numbers:
        flags += ["-gencode", f"arch=compute_{n},code=sm_{n}"]
    return flags + ["-gencode", f"arch=compute_{numbers[-1]},code=compute_{numbers[-1]}"]


def nvcc_flags(archs: str) -> list[str]:
    """nvcc's flags for the .cu sources, beyond those torch's build adds."""
    return ["-O3", "-std=c++17", "-lineinfo", "-DUSE_CUDA", *DEFINES, *cuda_arch_flags(archs)]


def extensions():
    if env_flag("FUSED_INPAINT_NO_EXTENSION"):
        return [], {}
    import torch
    from torch.utils import cpp_extension

    os.environ.setdefault("MAX_JOBS", str(min(os.cpu_count() or 1, 8)))
    sanitize = env_flag("FUSED_INPAINT_SANITIZE")
    cxx = ["-std=c++17", *DEFINES, *(SANITIZE_FLAGS if sanitize else ["-O3"])]
    sources = ["csrc/module.cpp", *sorted(glob("csrc/cpu/*.cpp"))]
    with_cuda = (
        torch.version.cuda is not None
        and cpp_extension.CUDA_HOME is not None
        and not env_flag("FUSED_INPAINT_SKIP_CUDA_BUILD")
        and not sanitize
    )
    kwargs = dict(include_dirs=[os.path.join(ROOT, "csrc")], py_limited_api=True)
    if sanitize:
        kwargs["extra_link_args"] = SANITIZE_FLAGS
    if with_cuda:
        archs = os.environ.get("FUSED_INPAINT_CUDA_ARCHS", "80;90")
        ext = cpp_extension.CUDAExtension(
            "fused_inpaint._C",
            # csrc/cuda/*.cpp (the host compiler's) register the kernels of the .cu files.
            sources + sorted(glob("csrc/cuda/*.cpp")) + sorted(glob("csrc/cuda/*.cu")),
            extra_compile_args={"cxx": cxx + ["-DUSE_CUDA"], "nvcc": nvcc_flags(archs)},
            **kwargs,
        )
    else:
        ext = cpp_extension.CppExtension(
            "fused_inpaint._C", sources, extra_compile_args={"cxx": cxx}, **kwargs
        )
    return [ext], {"build_ext": cpp_extension.BuildExtension}


if __name__ == "__main__":
    ext_modules, cmdclass = extensions()
    setup(
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        options={"bdist_wheel": {"py_limited_api": "cp310"}} if ext_modules else {},
    )
