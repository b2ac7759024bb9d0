"""Network weights in safetensors, with the architecture in the file's metadata."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from safetensors.torch import load_file, save_file

from fused_inpaint.models.network import SlimInpaintNet

# Trained weights shipped inside the package (absent until a training run committed them).
DEFAULT_WEIGHTS = Path(__file__).with_name("slim_inpaint.safetensors")


def save_network(network: SlimInpaintNet, path: str | os.PathLike, **info: str) -> None:
    """Writes the weights and architecture (plus ``info``) atomically to ``path``."""
    path = Path(path)
    metadata = {"config": json.dumps(network.config), **{k: str(v) for k, v in info.items()}}
    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_network(weights: str | os.PathLike | None = None) -> SlimInpaintNet:
    """The network with ``weights`` (a safetensors file), by default the shipped ones.

    Without a weights file anywhere, returns a randomly initialised network and warns that
    its output is not meaningful.
    """
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if weights is None and not path.exists():
        warnings.warn(
            "fused_inpaint ships no trained weights yet: the network is randomly initialised "
            "and its output is not meaningful",
            stacklevel=2,
        )
        return SlimInpaintNet()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        config = json.loads((f.metadata() or {}).get("config", "{}"))
    network = SlimInpaintNet(**config)
    network.load_state_dict(load_file(str(path)))
    return network
