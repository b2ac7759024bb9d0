"""Test configuration shared by every op's tests.

Without a GPU the Triton kernels run on CPU tensors under Triton's interpreter, which
must be switched on before any Triton kernel is defined, hence before the package loads.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Each pytest-xdist worker takes its share of the CPUs for torch's threads, and so do the
# processes it starts (OMP_NUM_THREADS): with every worker's threads spanning every CPU,
# each waited on the others' spinning, and tracking tests of 3 seconds took a minute.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = max(1, (os.cpu_count() or 1) // _workers)
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def pytest_collection_modifyitems(items):
    """Tests marked ``long`` first, the rest in their order: then no xdist worker starts a
    long one when the others are nearly done."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def nan_poisoned_allocations():
    """Fill every fresh allocation (torch.empty*, also from C++) with NaN, so that an
    output element a kernel forgets to write fails the comparison."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    torch.utils.deterministic.fill_uninitialized_memory = previous[2]


@pytest.fixture(autouse=True)
def restore_backend():
    """Each test starts on the default backend, whatever the previous one selected."""
    import fused_inpaint

    previous = fused_inpaint.get_backend()
    yield
    fused_inpaint.set_backend(previous)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
