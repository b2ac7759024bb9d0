"""tools/gpu_check.sh as a dry run, its wheels and tests steps: on a machine without a GPU
the GPU tests collect with no error, from the prepared wheels (tools/prepare_gpu_wheels.sh)
where they suit this Python, and $OUT gets the summary and the log archive."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
from support import own_process_on_cuda

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


@own_process_on_cuda
def crashing_test(device):
    os.kill(os.getpid(), signal.SIGSEGV)


@own_process_on_cuda
def failing_test(device):
    assert device == "cpu", "the assertion message reaches the parent"


@own_process_on_cuda
def passing_test(device):
    assert os.getpid() != int(os.environ["PARENT_PID"]) if device == "cuda" else True


def test_a_cuda_test_that_crashes_fails_alone_in_its_own_process(monkeypatch):
    """The harness that keeps a crashing GPU test from ending its pytest worker: on "cuda"
    the body runs in a child process, whose crash or failure fails the test with its cause;
    on other devices it runs in place."""
    monkeypatch.setenv("PARENT_PID", str(os.getpid()))
    passing_test(device="cuda")
    with pytest.raises(pytest.fail.Exception, match="killed by SIGSEGV"):
        crashing_test(device="cuda")
    with pytest.raises(pytest.fail.Exception, match="exit status 1(.|\n)*reaches the parent"):
        failing_test(device="cuda")
    with pytest.raises(AssertionError, match="reaches the parent"):
        failing_test(device="meta")
