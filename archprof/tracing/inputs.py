"""What a forward pass is called with: positional and keyword inputs, nested, or specs of them.

``model(*args, **kwargs)`` takes tensors, lists, tuples and dicts of tensors, and plain values. Anywhere
a tensor goes, an :class:`InputSpec` (a shape and a dtype, and for integer inputs a value range) may
stand instead; :func:`materialize` turns the whole structure into tensors on the device a profile
runs on: shapes only on meta, seeded realistic values on a real device (token ids below the
vocabulary size, masks of ones, floats from a standard normal), never zeros.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from archprof.errors import ArchprofValueError

# Names a user may write after the shape: ``1x128:int64``.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "double": torch.float64, "fp64": torch.float64,
    "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    "complex64": torch.complex64,
}
DEFAULT_INTEGER_HIGH = 2  # integer inputs with no range and no embedding to read one from: 0 or 1


class InputError(ArchprofValueError):
    """An input or input spec that cannot be used (one readable line naming the input)."""


@dataclass(frozen=True)
class InputSpec:
    """A tensor input by its shape: ``InputSpec((1, 128), torch.int64, high=50257)``.

    ``dtype=None`` takes the model's floating dtype. Integer values are drawn from ``[low, high)``;
    with no ``high``, an input whose name ends in ``mask`` is all ones and any other takes the
    vocabulary size of the model's first embedding (token ids), else ``[0, 2)``.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype | None = None
    low: int | None = None
    high: int | None = None

    def __post_init__(self) -> None:
        shape = tuple(self.shape) if isinstance(self.shape, (tuple, list, torch.Size)) else None
        if shape is None or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
            raise InputError(f"an input shape must be non-negative integers, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        if self.dtype is not None and not isinstance(self.dtype, torch.dtype):
            raise InputError(f"dtype must be a torch.dtype, got {self.dtype!r}")
        if self.low is not None and self.high is not None and self.high <= self.low:
            raise InputError(f"value range [{self.low}, {self.high}) is empty")

    def __str__(self) -> str:
        text = "x".join(map(str, self.shape))
        if self.dtype is not None:
            text += ":" + str(self.dtype).replace("torch.", "")
        if self.high is not None:
            text += f":{self.low or 0}..{self.high}"
        return text


@dataclass
class Inputs:
    """Positional and keyword arguments of one forward call, each a tensor, spec or plain value."""

    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor, depth first, with its path (``args[0]``, ``kwargs["input_ids"]``)."""
        yield from _walk(self.args, "args", torch.Tensor)
        yield from _walk(self.kwargs, "kwargs", torch.Tensor)

    def specs(self) -> Iterator[tuple[str, InputSpec]]:
        yield from _walk(self.args, "args", InputSpec)
        yield from _walk(self.kwargs, "kwargs", InputSpec)

    def nbytes(self) -> int:
        """Bytes the inputs take on a real device (specs counted at their dtype, float32 if unset)."""
        total = sum(t.numel() * t.element_size() for _, t in self.tensors())
        for _, spec in self.specs():
            total += _numel(spec.shape) * torch.empty((), dtype=spec.dtype or torch.float32).element_size()
        return total


def as_inputs(inputs: Any = None, args: Any = None, kwargs: Mapping[str, Any] | None = None) -> Inputs:
    """``inputs`` as ``model(...)`` would take it: a tuple is the positional arguments, a dict the
    keyword arguments, an :class:`Inputs` both, anything else (a tensor, a spec, a list of images)
    the one positional argument. ``args=`` and ``kwargs=`` say it explicitly and may be combined."""
    if inputs is not None and (args is not None or kwargs is not None):
        raise InputError("give inputs=, or args= and kwargs=, not both")
    if inputs is not None:
        if isinstance(inputs, Inputs):
            return inputs
        if isinstance(inputs, tuple):
            return Inputs(inputs, {})
        if isinstance(inputs, Mapping):
            return Inputs((), _keyword_dict(inputs))
        return Inputs((inputs,), {})
    if args is not None and not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    return Inputs(args or (), _keyword_dict(kwargs or {}))


def _keyword_dict(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    bad = [k for k in kwargs if not isinstance(k, str)]
    if bad:
        raise InputError(f"keyword inputs must be named by strings, got {bad[0]!r}")
    return dict(kwargs)


def _walk(value: Any, path: str, kind: type | tuple[type, ...]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, kind):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]", kind)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{path}[{k!r}]".replace("'", '"'), kind)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def parse_input(text: str) -> tuple[str | None, InputSpec]:
    """``[name=]SHAPE[:dtype][:low..high]``, e.g. ``input_ids=1x128:int64:0..50257`` or ``1x3x224x224``."""
    raw = text.strip()
    name, sep, rest = raw.partition("=")
    if not sep:
        name, rest = None, raw
    elif not name.strip().isidentifier():
        raise InputError(f"input {text!r}: {name.strip()!r} is not an argument name")
    parts = rest.split(":")
    shape_text, extras = parts[0].strip(), [p.strip() for p in parts[1:]]
    if not re.fullmatch(r"\d+(x\d+)*|\d+(,\d+)*", shape_text):
        raise InputError(f"input {text!r}: the shape must be integers joined by x, like 1x3x224x224")
    shape = tuple(int(s) for s in re.split("[x,]", shape_text))
    dtype, low, high = None, None, None
    for extra in extras:
        bounds = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", extra)
        if bounds:
            if high is not None:
                raise InputError(f"input {text!r}: two value ranges")
            low, high = int(bounds[1]), int(bounds[2])
        elif extra.lower() in DTYPES:
            if dtype is not None:
                raise InputError(f"input {text!r}: two dtypes")
            dtype = DTYPES[extra.lower()]
        else:
            known = ", ".join(sorted(DTYPES))
            raise InputError(f"input {text!r}: {extra!r} is neither a dtype ({known}) nor a value range like 0..50257")
    if len(extras) > 2:
        raise InputError(f"input {text!r}: expected [name=]SHAPE[:dtype][:low..high]")
    if high is not None and (dtype is None or dtype.is_floating_point or dtype.is_complex):
        raise InputError(f"input {text!r}: a value range is for integer inputs (add a dtype such as int64)")
    return (name.strip() if name else None), InputSpec(shape, dtype, low, high)


def inputs_from_specs(specs: list[tuple[str | None, InputSpec]]) -> Inputs:
    """Parsed ``--input`` options: unnamed ones are positional in order, named ones keywords."""
    args, kwargs = [], {}
    for name, spec in specs:
        if name is None:
            if kwargs:
                raise InputError("positional inputs must come before named ones")
            args.append(spec)
        elif name in kwargs:
            raise InputError(f"input {name!r} is given twice")
        else:
            kwargs[name] = spec
    return Inputs(tuple(args), kwargs)


def float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (a lazy one's too): its floating inputs'."""
    return next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), torch.get_default_dtype())


def vocabulary_size(model: nn.Module) -> int | None:
    """The number of rows of the model's first embedding: the range of its token ids."""
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            return module.num_embeddings
    return None


def materialize(
    inputs: Inputs, device: str, float_dtype: torch.dtype, *, seed: int = 0, vocabulary: int | None = None
) -> Inputs:
    """Tensors on ``device`` for every tensor and spec in ``inputs``; other values untouched.

    On meta a tensor becomes an empty tensor of its shape and dtype. On a real device a tensor
    with data is copied there and a spec (or a meta tensor) is filled with seeded values.
    """
    generator = torch.Generator().manual_seed(seed)  # on the CPU; values made there whatever the default device

    def make(value: Any, path: str) -> Any:
        if isinstance(value, (InputSpec, torch.Tensor)):
            try:
                return _tensor(value, path, device, float_dtype, generator, vocabulary)
            except InputError:
                raise
            except (RuntimeError, OverflowError, ValueError, TypeError) as err:
                message = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise InputError(f"input {path}: {message}") from err
        return rebuilt(value, lambda v, i: make(v, f"{path}[{i!r}]".replace("'", '"')))

    return Inputs(
        tuple(make(v, f"args[{i}]") for i, v in enumerate(inputs.args)),
        {k: make(v, f'kwargs["{k}"]') for k, v in inputs.kwargs.items()},
    )


def _tensor(
    value: InputSpec | torch.Tensor,
    path: str,
    device: str,
    float_dtype: torch.dtype,
    generator: torch.Generator,
    vocabulary: int | None,
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.device.type == device:
            return value
        if device == "meta":
            return torch.empty_like(value, device="meta")
        if value.device.type != "meta":
            return value.to(device)
        spec = InputSpec(tuple(value.shape), value.dtype)  # a meta tensor: fill it like a spec
    else:
        spec = value
    dtype = spec.dtype or float_dtype
    if device == "meta":
        return torch.empty(spec.shape, dtype=dtype, device="meta")
    if dtype == torch.bool:
        return torch.ones(spec.shape, dtype=dtype, device=device)
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(spec.shape, generator=generator, dtype=dtype, device=generator.device).to(device)
    low, high = spec.low or 0, spec.high
    if high is None:
        if path.lower().rstrip('"]').endswith("mask"):
            low, high = 1, 2
        else:
            high = vocabulary or DEFAULT_INTEGER_HIGH
    return torch.randint(low, high, spec.shape, generator=generator, dtype=dtype, device=generator.device).to(device)


def rebuilt(value: Any, each: Any) -> Any:
    """``value`` with ``each(item, key)`` applied to the items of its lists, tuples (named ones keep
    their type) and mappings (a dict subclass or ``UserDict`` keeps its type where it can); any
    other value as it is."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(each(v, i) for i, v in enumerate(value)))
    if isinstance(value, (tuple, list)):
        return type(value)(each(v, i) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        items = {k: each(v, k) for k, v in value.items()}
        try:
            return type(value)(items)
        except Exception:  # a mapping type that cannot be built from a dict
            return items
    return value


def describe(inputs: Inputs) -> str:
    """``[1, 3, 224, 224]`` for one positional tensor, else each tensor with its path and dtype."""
    found = [*_walk(inputs.args, "args", (torch.Tensor, InputSpec)), *_walk(inputs.kwargs, "kwargs", (torch.Tensor, InputSpec))]
    if len(found) == 1 and found[0][0] == "args[0]":
        return str(list(found[0][1].shape))
    return ", ".join(f"{path} {list(t.shape)} {str(t.dtype or 'float').replace('torch.', '')}" for path, t in found)


def with_batch(inputs: Inputs, batch: int) -> Inputs:
    """``inputs`` with the first dimension of every tensor input set to ``batch``."""

    def resize(value: Any) -> Any:
        if isinstance(value, InputSpec):
            return InputSpec((batch, *value.shape[1:]) if value.shape else value.shape, value.dtype, value.low, value.high)
        if isinstance(value, torch.Tensor):
            return InputSpec((batch, *value.shape[1:]), value.dtype) if value.dim() else value
        return rebuilt(value, lambda v, i: resize(v))

    return Inputs(tuple(resize(v) for v in inputs.args), {k: resize(v) for k, v in inputs.kwargs.items()})
