"""What every archprof architecture tells the profiler about itself."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from torch import nn


class Architecture(nn.Module, abc.ABC):
    """A network that knows its configuration, its default input and its named stages.

    ``stage_modules`` maps each stage name, in forward order, to the module paths it covers; the
    profiler charges an operation to the stage whose path is the longest prefix of the module
    that ran it. ``materialized_modules`` lists the modules whose outputs must exist in memory
    when intermediate tensors are streamed (the MobileNetV2 paper's memory measure); by default
    every leaf layer's output is materialized.
    """

    config: Any  # its configuration dataclass (configs.py), or a dict: Profile.config field by field
    resolution: int

    @property
    def default_input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)

    @abc.abstractmethod
    def stage_modules(self) -> dict[str, tuple[str, ...]]:
        """Stage name -> module paths, in forward order."""

    def materialized_modules(self) -> list[str] | None:
        return None

    def initialize(self, init: Callable[[nn.Module], None]) -> None:
        """Apply ``init`` to every submodule, unless the weights live on the meta device.

        Meta weights have no values to initialize, and torch's meta ``normal_`` imports its Python
        reference library (about a second), which a command-line run should not pay.
        """
        if any(p.is_meta for p in self.parameters()):
            return
        self.apply(init)
