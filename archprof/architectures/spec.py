"""Model specs as users type them: ``mobilenet_v2:width=0.5,resolution=160``, or a factory.

A factory is ``package.module:callable`` or ``path/to/file.py:callable`` returning an
``nn.Module``, optionally followed by ``:key=value,...`` keyword arguments.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archprof.architectures.registry import build_model, list_models, model_info
from archprof.errors import SpecError


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as the user typed it: the label of the model in every output
    name: str  # a registered name, or the factory's "module:callable"
    options: dict[str, Any] = field(default_factory=dict)
    factory: bool = False
    inputs: tuple[str, ...] = ()  # the model's own inputs (``name@1x3x160x160``), as --input takes them


def parse_value(text: str) -> Any:
    """A Python literal (``ast.literal_eval``: ``None``, ``True``, ``0.5``, ``'x'``, ``(2, 3)``,
    ``[0.5, 1.0]``); ``true``/``false``/``none`` in any case; anything else is the bare word, a string."""
    stripped = text.strip()
    if not stripped:
        return ""
    words = {"true": True, "false": False, "none": None, "null": None}
    if stripped.lower() in words:
        return words[stripped.lower()]
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if stripped[:1] in "[(" and stripped[-1:] in "])":  # [a,b] of bare words
        return type_of_brackets(stripped)([parse_value(v) for v in split_top_level(stripped[1:-1])])
    return stripped


def type_of_brackets(text: str) -> type:
    return tuple if text.startswith("(") else list


def split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes; empty parts dropped."""
    depth, quote, start, parts = 0, "", 0, []
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def parse_options(text: str) -> dict[str, Any]:
    """``key=value,key=[a,b]`` -> dict; commas inside brackets or quotes belong to the value."""
    options: dict[str, Any] = {}
    for part in split_top_level(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"option {part!r} is not key=value")
        if key.strip() in options:
            raise SpecError(f"option {key.strip()!r} is given twice")
        options[key.strip()] = parse_value(value)
    return options


def parse_spec(text: str) -> ModelSpec:
    """``name[:options]``, ``module:callable[:options]`` or ``file.py:callable[:options]``, each
    optionally followed by its own inputs: ``@1x3x160x160`` or ``@input_ids=1x64:int64@...``."""
    if not text or not text.strip():
        raise SpecError("empty model name")
    model_text, *inputs = text.split("@")
    if any(not i.strip() for i in inputs):
        raise SpecError(f"model {text!r}: an empty input after @")
    if inputs:
        spec = parse_spec(model_text)
        return ModelSpec(text, spec.name, spec.options, spec.factory, tuple(i.strip() for i in inputs))
    head, sep, rest = text.partition(":")
    if head == "hf" and sep:  # "hf:gpt2[:options]", "hf:path/to/config.json[:options]": transformers
        hf_name, hf_sep, hf_options = rest.partition(":")
        return ModelSpec(text, f"hf:{hf_name}", parse_options(hf_options) if hf_sep else {})
    func, sep2, options = rest.partition(":")
    # "name:key=value,..." is a registered model with options; "module:callable[:options]" and
    # "file.py:callable[:options]" are factories.
    is_factory = bool(sep) and head not in list_models() and "=" not in func
    if not is_factory:
        return ModelSpec(text, head, parse_options(rest) if sep else {})
    if not func.replace(".", "").replace("_", "").isalnum():
        raise SpecError(f"factory {text!r} names no callable (expected module:callable or file.py:callable)")
    return ModelSpec(text, f"{head}:{func}", parse_options(options) if sep2 else {}, factory=True)


def spec_label(spec: ModelSpec, options: Mapping[str, Any]) -> str:
    """The label of ``spec`` given ``options`` besides its own, as the user would type them all:
    ``resnet50`` and ``freeze_at=2`` are ``resnet50:freeze_at=2``; ``fcos:centerness=reg`` and
    ``norm='none'`` are ``fcos:centerness=reg,norm=none``; no options, ``spec.text`` itself."""
    if not options:
        return spec.text
    return spec.text + ("," if spec.options else ":") + ",".join(f"{k}={option_text(v)}" for k, v in options.items())


def option_text(value: Any) -> str:
    """An option's value as a spec writes it: ``true``, ``[3,4,5]``, ``0.5``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def with_options(spec: ModelSpec, options: Mapping[str, Any]) -> ModelSpec:
    """``spec`` built with ``options`` too, labelled with them (``spec_label``)."""
    return ModelSpec(spec_label(spec, options), spec.name, {**spec.options, **options}, spec.factory, spec.inputs)


def configured(name: str, options: Mapping[str, Any]) -> ModelSpec:
    """Registered model ``name`` built with ``options``, labelled with those that differ from its
    defaults: ``resnet50:freeze_at=2`` (what ``archprof resnet --depth 50 --freeze-at 2`` profiles)."""
    defaults = model_info(name).defaults
    changed = {k: v for k, v in options.items() if k not in defaults or v != defaults[k]}
    return ModelSpec(spec_label(ModelSpec(name, name), changed), name, dict(options))


def load_factory(target: str) -> Any:
    module_name, _, func_name = target.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise SpecError(f"factory file {module_name} does not exist")
            spec = importlib.util.spec_from_file_location(f"archprof_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except SpecError:
        raise
    except Exception as err:  # the user's module failed to import: name the cause in one line
        raise SpecError(f"cannot import {module_name}: {type(err).__name__}: {_first_line(err)}") from err
    func = module
    for attr in func_name.split("."):
        if not hasattr(func, attr):
            raise SpecError(f"{module_name} has no attribute {func_name!r}")
        func = getattr(func, attr)
    if not callable(func):
        raise SpecError(f"{target} is not callable")
    return func


def build_from_spec(spec: ModelSpec, device: str = "meta", overrides: dict[str, Any] | None = None) -> nn.Module:
    """Build a registered architecture or call a user factory; errors are one-line SpecErrors."""
    options = {**spec.options, **(overrides or {})}
    if spec.name.startswith("hf:"):
        from archprof.architectures.huggingface import build_hf_model  # imports transformers, if installed

        try:
            return build_hf_model(spec.name[len("hf:"):], device=device, **options)
        except ValueError as err:
            raise SpecError(str(err)) from err
    if not spec.factory:
        try:
            return build_model(spec.name, device=device, **options)
        except ValueError as err:
            raise SpecError(str(err)) from err
    factory = load_factory(spec.name)
    try:
        try:
            with torch.device(device):
                model = factory(**options)
        except Exception:
            if device == "cpu":
                raise
            model = factory(**options)  # a factory that cannot build on meta builds on the CPU
    except Exception as err:
        raise SpecError(f"{spec.name} raised {type(err).__name__}: {_first_line(err)}") from err
    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec.name} returned {type(model).__name__}, not a torch.nn.Module")
    model.archprof_name = spec.name
    return model


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""
