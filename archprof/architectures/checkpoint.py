"""Checking that a checkpoint fits an architecture, without running anything from the file.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so
a pickle that would run code is refused instead of executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archprof.architectures.spec import SpecError

# Where training scripts commonly nest the weights.
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"checkpoint {file} does not exist")
    try:
        data: Any = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "not a weights-only checkpoint"
        raise SpecError(f"checkpoint {file} refused: it is not weights-only ({first})") from err
    except Exception as err:
        raise SpecError(f"cannot read checkpoint {file}: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}") from err
    for key in STATE_DICT_KEYS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpecError(f"checkpoint {file} holds no state dict of tensors")
    return data


def check_checkpoint(model: nn.Module, path: str | Path) -> int:
    """Raise SpecError naming the first mismatches unless the checkpoint's keys and shapes fit
    ``model`` exactly; return the number of tensors checked."""
    state = load_state_dict(path)
    # A DistributedDataParallel checkpoint prefixes every key with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
        if items:
            shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise SpecError(f"checkpoint {path} does not fit the model: {'; '.join(problems)}")
    return len(expected)
