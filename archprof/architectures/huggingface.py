"""Hugging Face transformers models built from their configuration: ``hf:gpt2``, ``hf:llama:...``.

``hf:NAME[:key=value,...]`` builds ``AutoConfig.for_model(NAME, **overrides)`` and its model on the
meta device, so a 70 B configuration costs nothing; ``hf:path/to/config.json`` (or a folder holding
one) builds from a local configuration. Nothing is ever downloaded: a Hub name is used only if its
configuration is already in the local cache, and is otherwise a one-line error saying so.

The model is the one each architecture was pre-trained as, its language-modelling head included:
the sequence-to-sequence LM for encoder-decoders (T5), the masked LM for encoders (BERT), the
causal LM for decoders (GPT-2, Llama); ``head=base`` builds the bare transformer instead
(``AutoModel``). It carries its default inputs (``archprof_inputs``): token ids at ``seq_len`` and
``batch``, an attention mask of ones where the forward takes one, and decoder ids for an
encoder-decoder.

transformers is an optional dependency (``pip install 'archprof[hf]'``), imported only here.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archprof.errors import ArchprofValueError
from archprof.tracing.inputs import DTYPES, Inputs, InputSpec

PREFIX = "hf:"
INSTALL_HINT = "pip install 'archprof[hf]'"
HEADS = ("lm", "base")
# Spellings of a model_type that transformers writes otherwise ("gpt-neox" and "gpt_neox" are
# tried both ways anyway). Checkpoint names ("llama3", "flan-t5") are not aliases: their
# configurations differ from the type's default, so they are the Hub's to resolve.
ALIASES = {"gpt-2": "gpt2", "gpt": "openai-gpt", "gpt-j": "gptj"}
# The pre-training heads in the order tried: an encoder-decoder takes only the first.
LM_HEADS = (
    ("AutoModelForSeq2SeqLM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("AutoModelForMaskedLM", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("AutoModelForCausalLM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
)
MASK_ARGUMENTS = ("attention_mask", "decoder_attention_mask")
# transformers' SDPA attention under a name of archprof's, with a mask function that can run on
# meta (transformers' extension point: AttentionInterface and AttentionMaskInterface). A name
# with "sdpa" in it gets transformers' check that the model supports SDPA.
SDPA = "archprof_sdpa"


class HuggingFaceError(ArchprofValueError):
    """An ``hf:`` model that cannot be built (one readable line)."""


def transformers_module() -> Any:
    try:
        import transformers
    except ModuleNotFoundError as err:
        if err.name != "transformers":  # installed, but something it needs is not
            raise HuggingFaceError(f"transformers failed to import: {type(err).__name__}: {_first_line(err)}") from err
        raise HuggingFaceError(f"hf: models need the transformers package: {INSTALL_HINT}") from err
    except ImportError as err:
        raise HuggingFaceError(f"transformers failed to import: {type(err).__name__}: {_first_line(err)}") from err
    return transformers


def build_hf_model(
    name: str,
    *,
    device: str | torch.device = "meta",
    seq_len: int = 128,
    batch: int = 1,
    decoder_seq_len: int | None = None,
    head: str = "lm",
    attention: str = "sdpa",
    dtype: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """The architecture ``name`` (a model_type, an alias, a local config file or folder, or a Hub
    name already in the local cache) with its configuration's ``overrides``, on ``device``.

    ``seq_len``, ``batch`` and ``decoder_seq_len`` (default: ``seq_len``) shape the default
    inputs; ``head`` is ``"lm"`` or ``"base"``; ``attention`` transformers' attention implementation
    (``"sdpa"``, ``"eager"``: the same MACs, different memory); ``dtype`` (``bfloat16``, ...) the weights'.
    Everything else is a field of the configuration.
    """
    transformers = transformers_module()
    for option, value in (("seq_len", seq_len), ("batch", batch), ("decoder_seq_len", decoder_seq_len)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise HuggingFaceError(f"{option} must be an integer >= 1, got {value!r}")
    if head not in HEADS:
        raise HuggingFaceError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    weights_dtype = _dtype(dtype)
    with _quiet(transformers):
        config = _config(transformers, name, overrides)
        model = _instantiate(_model_class(transformers, config, head), config, device, weights_dtype, attention, name)
    model.eval()
    model.archprof_name = PREFIX + name
    model.archprof_inputs = default_inputs(model, seq_len, batch, decoder_seq_len or seq_len)
    _check_positions(model, name, max(seq_len, decoder_seq_len or seq_len))
    _tag_blocks(model)
    if getattr(model.config, "_attn_implementation", None) != SDPA:  # eager: masks given to the model
        model.register_forward_pre_hook(meta_masks_as_absent, with_kwargs=True)
    return model


def default_inputs(model: nn.Module, seq_len: int, batch: int, decoder_seq_len: int) -> Inputs | None:
    """Token ids in ``[0, vocab_size)``, a mask of ones where the forward takes one, and decoder ids
    for an encoder-decoder; pixels for an image model. None where the main input is neither."""
    config = model.config
    text = config.get_text_config() if callable(getattr(config, "get_text_config", None)) else config
    main = getattr(model, "main_input_name", "input_ids")
    parameters = _forward_parameters(model)
    kwargs: dict[str, Any] = {}
    if main == "input_ids":
        vocabulary = getattr(text, "vocab_size", None)
        low = 0 if vocabulary else None
        kwargs["input_ids"] = InputSpec((batch, seq_len), torch.int64, low, vocabulary)
        if "attention_mask" in parameters:
            kwargs["attention_mask"] = InputSpec((batch, seq_len), torch.int64, 1, 2)  # all ones: no padding
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in parameters:
            kwargs["decoder_input_ids"] = InputSpec((batch, decoder_seq_len), torch.int64, low, vocabulary)
    elif main == "pixel_values" and getattr(config, "image_size", None) and getattr(config, "num_channels", None):
        size = config.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        kwargs["pixel_values"] = InputSpec((batch, config.num_channels, height, width))
    else:
        return None
    return Inputs((), kwargs)


def meta_masks_as_absent(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Drop the attention masks given to a model on the meta device (eager attention's forward
    hook; see :func:`meta_aware_sdpa_mask` for why). Masks on a real device pass untouched."""
    names = _forward_parameters(module)
    changed = False
    args = list(args)
    for name in MASK_ARGUMENTS:
        if isinstance(kwargs.get(name), torch.Tensor) and kwargs[name].device.type == "meta":
            kwargs[name], changed = None, True
        elif name in names and names.index(name) < len(args):
            position = names.index(name)
            if isinstance(args[position], torch.Tensor) and args[position].device.type == "meta":
                args[position], changed = None, True
    return (tuple(args), kwargs) if changed else None


# --- names and configurations ------------------------------------------------------------------


def _config(transformers: Any, name: str, overrides: dict[str, Any]) -> Any:
    """The configuration ``name`` stands for, constructed with ``overrides``.

    Overrides go to the constructor, not onto a built configuration: fields derived there
    (Llama's ``num_key_value_heads`` defaults to the number of heads) must see them.
    """
    if not name.strip():
        raise HuggingFaceError("hf: needs a model type or a config file, e.g. hf:gpt2 or hf:path/to/config.json")
    path = Path(name)
    if name.endswith(".json") or path.exists():
        data = _read_config_file(path)
        model_type = data["model_type"]
        if model_type not in transformers.CONFIG_MAPPING:
            raise HuggingFaceError(f"{name}: model_type {model_type!r} is not one transformers {transformers.__version__} knows")
        config_class = transformers.CONFIG_MAPPING[model_type]
        base = _constructed(name, lambda: config_class.from_dict(data))
        return _constructed(name, lambda: config_class.from_dict({**data, **_checked(base, overrides, name)}))
    model_type = _model_type(transformers, name)
    if model_type is not None:
        _checked(transformers.AutoConfig.for_model(model_type), overrides, name)
        return _constructed(name, lambda: transformers.AutoConfig.for_model(model_type, **overrides))
    try:  # a Hub name whose configuration is already in the local cache: no download needed
        base = transformers.AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception:
        raise HuggingFaceError(_not_found(transformers, name)) from None
    return _constructed(name, lambda: type(base).from_dict({**base.to_dict(), **_checked(base, overrides, name)}))


def _constructed(name: str, make: Any) -> Any:
    """``make()``, a configuration; what its validation refuses, as one line with the root cause."""
    try:
        return make()
    except HuggingFaceError:
        raise
    except Exception as err:
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        raise HuggingFaceError(f"{PREFIX}{name}: invalid configuration: {type(root).__name__}: {_first_line(root)}") from err


def _read_config_file(path: Path) -> dict[str, Any]:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise HuggingFaceError(f"config file {file} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HuggingFaceError(f"cannot read {file}: {_first_line(err)}") from err
    if not isinstance(data, dict) or "model_type" not in data:
        raise HuggingFaceError(f"{file} is not a transformers configuration (no model_type)")
    return data


def _model_type(transformers: Any, name: str) -> str | None:
    known = transformers.CONFIG_MAPPING
    lowered = name.lower()
    for candidate in (name, lowered, ALIASES.get(lowered), lowered.replace("-", "_"), lowered.replace("_", "-")):
        if candidate is not None and candidate in known:
            return candidate
    return None


def _not_found(transformers: Any, name: str) -> str:
    types = list(transformers.CONFIG_MAPPING.keys())
    # "bert-base-uncased", "gpt2-medium": a checkpoint of a known model type.
    prefixes = sorted((t for t in types if name.lower().startswith((t + "-", t + "_"))), key=len)
    close = prefixes[-1:] or difflib.get_close_matches(name.lower(), types + list(ALIASES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
    if "/" in name or prefixes:
        return (
            f"{PREFIX}{name} would need a download from the Hugging Face Hub, and archprof downloads nothing{hint} "
            f"(a model type takes options, hf:llama:hidden_size=4096,...; a local config: hf:path/to/config.json)"
        )
    return f"{PREFIX}{name}: unknown model type{hint or ' (hf:gpt2, hf:bert, hf:llama, hf:t5, ... or hf:path/to/config.json)'}"


def _checked(config: Any, overrides: dict[str, Any], name: str) -> dict[str, Any]:
    """``overrides`` under the configuration's own field names (GPT-2's ``hidden_size`` is
    ``n_embd``), each checked to be a field ``config`` has."""
    aliases = dict(getattr(config, "attribute_map", {}))
    fields = set(config.to_dict()) | set(aliases)
    unknown = [key for key in overrides if key not in fields and not hasattr(config, key)]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(fields), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HuggingFaceError(f"{PREFIX}{name}: {type(config).__name__} has no field {unknown[0]!r}{hint}")
    return {aliases.get(key, key): value for key, value in overrides.items()}


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """transformers' advice while building (deprecated fields, untrained weights) is not the
    profile's business: one line on stderr is for errors."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def _dtype(text: str | None) -> torch.dtype | None:
    if text is None:
        return None
    dtype = DTYPES.get(str(text).lower())
    if dtype is None or not dtype.is_floating_point:
        floats = sorted(k for k, v in DTYPES.items() if v.is_floating_point)
        raise HuggingFaceError(f"dtype {text!r} is not a floating dtype ({', '.join(floats)})")
    return dtype


# --- the model ---------------------------------------------------------------------------------


def _model_class(transformers: Any, config: Any, head: str) -> Any:
    """``AutoModel`` for ``head="base"``; else the first pre-training head of :data:`LM_HEADS` that
    the model_type has (an encoder-decoder: the sequence-to-sequence LM only), else ``AutoModel``."""
    if head == "base":
        return transformers.AutoModel
    try:
        from transformers.models.auto import modeling_auto
    except ImportError:
        modeling_auto = None
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    for auto_name, mapping_name in LM_HEADS:
        if (auto_name == "AutoModelForSeq2SeqLM") != encoder_decoder:
            continue  # Whisper's decoder alone is a causal LM, but hf:whisper means the whole model
        auto = getattr(transformers, auto_name)
        names = getattr(modeling_auto, mapping_name, None)
        if names is not None and config.model_type in names:
            return auto
        if names is None and _builds(auto, config):  # the table moved in this transformers: ask the class
            return auto
    return transformers.AutoModel


def _builds(auto: Any, config: Any) -> bool:
    try:
        with torch.device("meta"):
            auto.from_config(config)
    except ValueError:
        return False
    return True


def _instantiate(
    model_class: Any, config: Any, device: str | torch.device, dtype: torch.dtype | None, attention: str, name: str
) -> nn.Module:
    """``model_class`` from ``config`` on ``device`` (on meta: no weight memory, no init work).

    SDPA by default: transformers' own default on current torch, so the path users run; a model
    without SDPA support takes eager attention, as transformers would. Both count the same MACs: eager's two
    matmuls are SDPA's b x h x s_q x s_k x (d + d_v).
    """
    extra = {"dtype": dtype} if dtype is not None else {}
    requested = SDPA if attention == "sdpa" and _register_sdpa() else attention
    try:
        with torch.device(device):
            try:
                return model_class.from_config(config, attn_implementation=requested, **extra)
            except (ValueError, ImportError):
                if attention != "sdpa":
                    raise
                return model_class.from_config(config, attn_implementation="eager", **extra)  # no SDPA support
    except Exception as err:  # a configuration transformers refuses (heads not dividing the width, ...)
        raise HuggingFaceError(f"cannot build {PREFIX}{name}: {type(err).__name__}: {_first_line(err)}") from err


def meta_aware_sdpa_mask(*args: Any, **kwargs: Any) -> Any:
    """transformers' SDPA mask, with a padding mask on the meta device read as all ones.

    transformers reads a padding mask's values to decide whether the mask can be skipped (for a
    mask of ones it is: SDPA then runs with ``is_causal``, or unmasked), and a meta tensor has no
    values to read. archprof's masks are all ones, and so are those models make for themselves
    (BART's decoder), so on meta the mask is built as transformers builds it for ones.
    """
    from transformers.masking_utils import sdpa_mask

    padding = kwargs.get("attention_mask")
    if isinstance(padding, torch.Tensor) and padding.device.type == "meta":
        kwargs["attention_mask"] = None
    return sdpa_mask(*args, **kwargs)


def _register_sdpa() -> bool:
    """Register :data:`SDPA` with transformers (idempotent); False where this transformers lacks
    the extension point, and plain SDPA is used."""
    try:
        import transformers
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
    except ImportError:
        return False
    if not hasattr(transformers, "AttentionInterface") or not hasattr(transformers, "AttentionMaskInterface"):
        return False
    transformers.AttentionInterface.register(SDPA, sdpa_attention_forward)
    transformers.AttentionMaskInterface.register(SDPA, meta_aware_sdpa_mask)
    return True


_FORWARD_PARAMETERS: dict[type, list[str]] = {}


def _forward_parameters(module: nn.Module) -> list[str]:
    """The names ``module.forward`` takes, in order (looked up once per class)."""
    cls = type(module)
    if cls not in _FORWARD_PARAMETERS:
        try:
            _FORWARD_PARAMETERS[cls] = list(inspect.signature(module.forward).parameters)
        except (TypeError, ValueError):
            _FORWARD_PARAMETERS[cls] = []
    return _FORWARD_PARAMETERS[cls]


def _check_positions(model: nn.Module, name: str, length: int) -> None:
    """Learned absolute positions (GPT-2, BERT) end at their table's size; on meta nothing would
    notice a longer sequence, so say it here. Rotary and relative positions have no such end."""
    config = model.config
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or length <= limit:
        return
    learned = any(
        isinstance(m, nn.Embedding) and m.num_embeddings == limit and ("position" in path or path.endswith("wpe"))
        for path, m in model.named_modules()
    )
    if learned:
        field = getattr(config, "attribute_map", {}).get("max_position_embeddings", "max_position_embeddings")
        raise HuggingFaceError(
            f"{PREFIX}{name}: seq_len {length} exceeds its {limit} learned positions (set {field}={length} to extend them)"
        )


def _tag_blocks(model: nn.Module) -> None:
    """The block grouping: each repeated layer by its class (``GPT2Block``, ``LlamaDecoderLayer``),
    token embeddings as ``embedding``, and as ``head`` the top-level part that holds the output
    projection (GPT-2's ``lm_head``; BERT's ``cls``, its transform included). Ops of the base
    model's own forward (masks, final norm) stay under its class name."""
    layers: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 1 and len({type(m) for m in module}) == 1:
            for layer in module:
                layer.archprof_block = type(layer).__name__
                layers.update(id(m) for m in layer.modules())
    for module in model.modules():
        if isinstance(module, nn.Embedding) and id(module) not in layers:
            module.archprof_block = "embedding"
    output = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if not isinstance(output, nn.Module):
        return
    base = getattr(model, "base_model", model)
    for _, child in model.named_children():
        if child is not base and any(m is output for m in child.modules()):
            child.archprof_block = "head"
            return
    output.archprof_block = "head"


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
