"""tools/gpu_check.sh as a dry run, its wheels and tests steps: on a machine without a GPU
the GPU tests collect with no error, from the prepared wheels (tools/prepare_gpu_wheels.sh)
where they suit this Python, and $OUT gets the summary and the log archive."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"


def wheels_for_this_python() -> bool:
    """Whether .whl holds wheels, all installable here (they may be for the GPU's Python)."""
    wheels = list(WHEELS.glob("*.whl"))
    here = set(sys_tags())
    return bool(wheels) and all(parse_wheel_filename(w.name)[3] & here for w in wheels)


def test_dry_run_collects_the_gpu_tests(tmp_path):
    out = tmp_path / "out"
    with_wheels = wheels_for_this_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env |= {
        "GPU_CHECK_DRY_RUN": "1",
        "GPU_CHECK_STEPS": "wheels tests",
        "GPU_CHECK_PYTHON": sys.executable,
        "GPU_CHECK_WHEELS": str(WHEELS if with_wheels else tmp_path / "no-wheels"),
        "OUT": str(out),
    }
    script = ROOT / "tools" / "gpu_check.sh"
    run = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "summary.txt"]
    summary = (out / "summary.txt").read_text()
    assert re.search(r"^tests: \d+/\d+ tests collected", summary, re.MULTILINE), summary
    with tarfile.open(out / "logs.tar.gz") as logs:
        tests, wheels = (
            logs.extractfile(f"./{name}.log").read().decode() for name in ("tests", "wheels")
        )
    for node in ("-cuda-cuda]", "-triton-cuda]", "test_gpu_large.py::", "::test_cuda_graphs"):
        assert node in tests, f"no GPU test {node} collected"
    if with_wheels:  # every package the tests import from the wheels came from their folder
        imported = re.findall(r"^(\w+) \S* (\S+)$", wheels, re.MULTILINE)
        assert len(imported) == 6 and all("/site/" in path for _, path in imported), wheels
