"""Each command parses its arguments, calls the library and hands the data to a renderer."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
import traceback
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archprof.analysis.training import MODES, OPTIMIZER_STATES, PRECISIONS
from archprof.architectures import list_models, model_info
from archprof.architectures.configs import DEPTHS, DetectorConfig, ResNetConfig
from archprof.cli.app import SETTINGS, ArchprofCommand, app
from archprof.cli.guard import user_code_guard
from archprof.errors import EXIT_UNCOUNTED, ArchprofError, ArchprofNotice, ArchprofValueError
from archprof.rendering.formats import FORMATS
from archprof.rendering.output import check_writable, emit, results

# What needs torch (the analysis, the model specs and inputs, the writers) is imported inside the
# commands that run a model: the help, --version, `list` and shell completion import none of it.
if TYPE_CHECKING:
    from archprof.architectures.spec import ModelSpec
    from archprof.tracing.inputs import Inputs


class UserError(ArchprofError):
    """Bad input on the command line: reported as one line on stderr with exit code 2."""


def complete_model(incomplete: str) -> list[str]:
    """Shell completion of a model name: the registered ones (no torch is imported)."""
    return [name for name in list_models() if name.startswith(incomplete)]


def complete_detector(incomplete: str) -> list[str]:
    return [name for name in DETECTORS if name.startswith(incomplete)]


# --format's choices: the registry of output formats (torch-free), one member per format.
Format = Enum("Format", {name: name for name in FORMATS}, type=str)


class Unit(str, Enum):
    macs = "macs"
    flops = "flops"


class Device(str, Enum):
    meta = "meta"
    cpu = "cpu"
    cuda = "cuda"


def _print_cause(err: BaseException) -> None:
    """With --verbose: the user's own traceback behind a one-line error."""
    cause = err.__cause__ or err
    if SETTINGS.verbose:
        sys.stderr.write("".join(traceback.format_exception(type(cause), cause, cause.__traceback__)))


def reports_user_errors(command: Callable) -> Callable:
    """Every expected failure, an ``ArchprofError``, is one line on stderr and its exit code: 2 for
    bad input, 3 for ``--strict``'s uncounted ops. Anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with user_code_guard(), warnings.catch_warnings():
                warnings.simplefilter("ignore", ArchprofNotice)  # the commands print notices as one line each
                return command(*args, **kwargs)
        except ArchprofError as err:
            if err.exit_code == EXIT_UNCOUNTED:  # the uncounted ops, as listed: no cause behind them
                typer.echo(f"archprof: error: {err}", err=True)
            else:
                _print_cause(err)
                typer.echo(f"archprof: error: {' '.join(str(err).split())}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper


def command(name: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as ``archprof NAME``, where it is defined: its signature is
    the command's options (a parameter defaulting to a ``group`` stands for the options of its
    dataclass), its docstring the help, and ``reports_user_errors`` its error contract."""

    def register(function: Callable) -> Callable:
        guarded = reports_user_errors(expand(function, grouped))
        app.command(name, cls=ArchprofCommand)(guarded)
        return guarded

    return register


def expand(
    command: Callable, derive: Callable[[inspect.Parameter], tuple[list[inspect.Parameter], Callable[[dict[str, Any]], Any]] | None],
    signature: inspect.Signature | None = None,
) -> Callable:
    """``command`` as typer reads it: each parameter that ``derive`` gives options for becomes those
    options where it stands (in ``signature``, by default the command's own), and the command
    receives the value ``derive``'s builder makes of them."""
    signature = signature or inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    builders: dict[str, tuple[list[str], Callable[[dict[str, Any]], Any]]] = {}
    for parameter in signature.parameters.values():
        derived = derive(parameter)
        if derived is None:
            parameters.append(parameter)
        else:
            options, build = derived
            parameters += options
            builders[parameter.name] = ([o.name for o in options], build)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, (names, build) in builders.items():
            kwargs[name] = build({n: kwargs.pop(n) for n in names})
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return wrapper


@dataclass(frozen=True)
class Group:
    """A command parameter's default that stands for command-line options: the fields ``names`` of
    the dataclass ``of`` (all of them, in their order, when none is named), each the option its
    annotation declares, or the one ``retyped`` gives it under this command. The command receives
    ``of`` built from them; the fields not named keep their defaults."""

    of: type
    names: tuple[str, ...]
    retyped: tuple[tuple[str, Any], ...]

    def options(self) -> list[inspect.Parameter]:
        hints = typing.get_type_hints(self.of, include_extras=True)
        defaults = {f.name: f.default for f in dataclasses.fields(self.of)}
        annotations = {**hints, **dict(self.retyped)}
        return [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name], annotation=annotations[name])
                for name in self.names or tuple(defaults)]


def group(of: type, *names: str, **retyped: Any) -> Any:
    """Options of a command written once, as the fields of ``of``: ``out: OutputChoice = group(OutputChoice)``."""
    return Group(of, names, tuple(retyped.items()))


def grouped(parameter: inspect.Parameter) -> tuple[list[inspect.Parameter], Callable[[dict[str, Any]], Any]] | None:
    """``expand``'s reading of a parameter whose default is a ``group``: its fields' options, and the dataclass."""
    if not isinstance(parameter.default, Group):
        return None
    return parameter.default.options(), lambda values, of=parameter.default.of: of(**values)


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutputOption = Annotated[str | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")]
UnitOption = Annotated[Unit, typer.Option("--unit", help="Cost shown in the grouped tables.")]
RawOption = Annotated[bool, typer.Option("--raw", help="Exact integers instead of K/M/G units.")]
ScaleOption = Annotated[
    str | None,
    typer.Option("--scale", help="Markdown and LaTeX: one unit for every count of a table, G, M, K or 1 (default: the largest count's)."),
]
TableOption = Annotated[
    list[str] | None,
    typer.Option("--table", help="Write only these tables (repeatable, or comma-separated): totals, stages, blocks, types, layers, ..."),
]
CaptionOption = Annotated[str | None, typer.Option("--caption", help="LaTeX: the caption of the tables (their conditions follow it).")]
LabelOption = Annotated[str | None, typer.Option("--label", help="LaTeX: the \\label (default tab:COMMAND-TABLE, e.g. tab:compare-totals).")]
SiunitxOption = Annotated[bool, typer.Option("--siunitx", help="LaTeX: siunitx S columns for the numbers (needs \\usepackage{siunitx}).")]
StrictOption = Annotated[bool, typer.Option("--strict", help="Fail (exit 3) if any op has no cost rule.")]
Mode = Enum("Mode", {m: m for m in MODES}, type=str)
Optimizer = Enum("Optimizer", {o: o for o in OPTIMIZER_STATES}, type=str)
Precision = Enum("Precision", {p: p for p in PRECISIONS}, type=str)
ModeOption = Annotated[Mode, typer.Option(
    "--mode", help="inference: an eval-mode forward; train: a training step (forward, loss, backward) with its memory.")]
OptimizerOption = Annotated[Optimizer | None, typer.Option(
    "--optimizer", help="With --mode train: the optimizer whose state is counted: sgd (none), momentum (1 copy), adam or adamw (2). Default sgd.")]
PrecisionOption = Annotated[Precision | None, typer.Option(
    "--precision", help="With --mode train: bytes of activations and weights: fp32, bf16, fp16 or amp (16-bit activations, fp32 weights). Default fp32.")]
PerStage = Annotated[bool, typer.Option("--per-stage", help="Per-stage table.")]
PerBlock = Annotated[bool, typer.Option("--per-block", help="Per-block-type table.")]
PerType = Annotated[bool, typer.Option("--per-type", help="Per-layer-type table.")]
PerLayer = Annotated[bool, typer.Option("--per-layer", help="Per-layer table.")]
PerPart = Annotated[bool, typer.Option("--per-part", help="Per-part table (detectors): backbone, neck, head.")]
PerLevel = Annotated[bool, typer.Option("--per-level", help="Per-pyramid-level table (detectors; a shared head charged to the level it ran on).")]
PerStride = Annotated[bool, typer.Option("--per-stride", help="Stages regrouped by output stride: stem, /2, /4, ..., /32, head.")]
PlotOption = Annotated[
    str | None,
    typer.Option("--plot", metavar="FILE", help="Also draw the figure to FILE: .svg, .pdf or .png (300 dpi); needs the plot extra."),
]


def check_plot(plot: str | None) -> None:
    """Refuse a --plot that cannot be drawn before any model runs: its type, its directory, matplotlib."""
    if plot is None:
        return
    from archprof.rendering.figures import FigureError, _pyplot, check_figure_path

    try:
        check_figure_path(plot)
    except FigureError:
        raise UserError(f"--plot {plot}: the figure must end in .svg, .pdf or .png") from None
    check_writable(plot)
    try:
        _pyplot()
    except FigureError as err:
        raise UserError(str(err)) from None


def draw_plot(plot: str | None, figure: Callable[[], Any]) -> None:
    """Draw ``figure()`` to ``plot`` (all or nothing, as every file archprof writes)."""
    if plot is not None:
        from archprof.rendering.figures import draw

        draw(figure(), plot)


def figure_grouping(groupings: list[str]) -> str:
    """What --plot draws: the first grouping shown, other than the layer view (too many bars to read)."""
    return next((by for by in groupings if by != "layer"), "stage")
BatchOption = Annotated[int | None, typer.Option("--batch", help="Batch size of the input.")]
InputShapeOption = Annotated[str | None, typer.Option("--input-shape", metavar="SHAPE", help="One float input's full shape, e.g. 1x3x224x224.")]
InputOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        metavar="SPEC",
        help="An input of the forward, repeatable: [name=]SHAPE[:dtype][:low..high], e.g. 1x3x224x224, "
        "input_ids=1x128:int64, ids=1x128:int64:0..50257 (named inputs are keyword arguments).",
    ),
]
SeqLenOption = Annotated[int | None, typer.Option("--seq-len", help="Token ids per sequence of an hf: language model's default input (128).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the random inputs and weights of a real (CPU) forward.")]
MaxMemoryOption = Annotated[
    str | None,
    typer.Option("--max-memory", metavar="SIZE", help="Refuse a real forward whose inputs and weights exceed this, e.g. 8GB (default: half the memory)."),
]
ResolutionOption = Annotated[int | None, typer.Option("--resolution", help="Input height and width.")]
NumClassesOption = Annotated[int | None, typer.Option("--num-classes", help="Classifier outputs.")]
DeviceOption = Annotated[
    Device | None,
    typer.Option("--device", help="meta (no memory; the default, with a CPU fallback and a notice), cpu or cuda (a real forward)."),
]


LayerDepthOption = Annotated[int | None, typer.Option("--layer-depth", metavar="N", help="Fold the layer view to N levels of the module tree.")]
# `--depth` sets a ResNet's depth under `resnet`; under the other commands it is refused, not read as --layer-depth.
NoDepthOption = Annotated[str | None, typer.Option("--depth", hidden=True)]  # any value: the refusal, not a parse error


@dataclass
class OutputChoice:
    """How the command line says what a result is written as, and where."""

    fmt: FormatOption = Format.table
    output: OutputOption = None
    unit: UnitOption = Unit.macs
    raw: RawOption = False
    scale: ScaleOption = None
    table: TableOption = None
    caption: CaptionOption = None
    label: LabelOption = None
    siunitx: SiunitxOption = False


@dataclass
class Views:
    """The grouped tables asked for."""

    per_stage: PerStage = False
    per_block: PerBlock = False
    per_type: PerType = False
    per_layer: PerLayer = False
    per_part: PerPart = False
    per_level: PerLevel = False
    per_stride: PerStride = False
    layer_depth: LayerDepthOption = None

    def check(self) -> None:
        """Refuse a --layer-depth that folds the layer view to nothing."""
        if self.layer_depth is not None and self.layer_depth < 1:
            raise UserError(f"--layer-depth must be >= 1, got {self.layer_depth}")


@dataclass
class Counting:
    """How each model is counted: --strict, and an inference forward or a training step."""

    strict: StrictOption = False
    mode: ModeOption = Mode.inference
    optimizer: OptimizerOption = None
    precision: PrecisionOption = None

    def training(self) -> dict[str, str]:
        """``profile()``'s mode, optimizer and precision; each training option refused without --mode train."""
        if self.mode.value != "train":
            given = "--optimizer" if self.optimizer is not None else "--precision" if self.precision is not None else None
            if given:
                raise UserError(f"{given} is for a training step: add --mode train")
            return {}
        return {"mode": "train", "optimizer": self.optimizer.value if self.optimizer is not None else "sgd",
                "precision": self.precision.value if self.precision is not None else "fp32"}


def refuse_unread(fmt: Format, raw: bool, unit: Unit | None = None, plot: str | None = None) -> None:
    """--raw and --unit shape the tables: CSV and JSON export exact integers of every cost, where
    they would change nothing (--unit still picks the cost a --plot draws)."""
    if not FORMATS[fmt.value].exports_data:
        return
    if raw:
        raise UserError(f"--raw is for tables: --format {fmt.value} always writes exact integers")
    if unit is Unit.flops and plot is None:
        raise UserError(f"--unit picks the cost the tables show: --format {fmt.value} writes MACs and FLOPs both")


def refuse_depth(command: str, depth: str | None, network: str = "`archprof resnet --depth N` or a name such as resnet101") -> None:
    if depth is not None:
        raise UserError(f"{command} has no --depth: --layer-depth N folds the layer view; a ResNet's depth is {network}")


def views(shown: Views, default: tuple[str, ...] | None = None) -> list[str]:
    """The grouped tables asked for (--layer-depth asks for the layer view); none asked means
    ``default``, else stage, block and type."""
    asked = (("part", shown.per_part), ("level", shown.per_level), ("stage", shown.per_stage), ("stride", shown.per_stride),
             ("block", shown.per_block), ("type", shown.per_type), ("layer", shown.per_layer or shown.layer_depth is not None))
    chosen = [by for by, on in asked if on]
    if chosen:
        return chosen
    if default is not None:
        return list(default)
    from archprof.analysis.profile import DEFAULT_GROUPINGS

    return list(DEFAULT_GROUPINGS)


def parse_shape(text: str) -> tuple[int, ...]:
    """One shape, ``1x3x224x224`` or ``1,3,224,224``; a mix of the two is refused, not read as one long shape."""
    if "," in text and ("x" in text or "X" in text):
        pieces = [piece.strip() for piece in text.split(",")]
        if len(pieces) > 1 and all("x" in piece.lower() for piece in pieces):
            raise UserError(
                f"--input-shape {text!r} holds {len(pieces)} shapes ({' and '.join(pieces)}): it is one input's shape; "
                f"give several inputs as --input {' --input '.join(pieces)}"
            )
        raise UserError(f"--input-shape {text!r} mixes 'x' and ',' separators: write one shape as 1x3x224x224 or 1,3,224,224")
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise UserError(f"input shape {text!r} is not a list of integers like 1x3x224x224") from None
    if not shape or any(s < 1 for s in shape):
        raise UserError(f"input shape {text!r} must be positive integers like 1x3x224x224")
    return shape


SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
              "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | None) -> int | None:
    """``8GB``, ``512MiB``, ``1.5G`` or a number of bytes."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:[eE]\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match[2].lower() not in SIZE_UNITS:
        raise UserError(f"--max-memory {text!r} is not a size like 8GB, 512MiB or 1000000")
    return int(float(match[1]) * SIZE_UNITS[match[2].lower()])


@dataclass
class InputChoice:
    """How the command line says what each model's forward is called with."""

    inputs: InputOption = None  # repeatable
    input_shape: InputShapeOption = None  # one float input
    batch: BatchOption = None
    resolution: ResolutionOption = None  # a user factory's input height and width
    seq_len: SeqLenOption = None
    seed: SeedOption = 0
    max_memory: MaxMemoryOption = None
    device: DeviceOption = None  # meta by default


def inputs_for(model: Any, spec: ModelSpec, choice: InputChoice) -> Inputs:
    """The inputs of ``model``: its own (``name@...``), --input, --input-shape, or its default."""
    from archprof.tracing.inputs import (
        InputError,
        Inputs,
        InputSpec,
        as_inputs,
        inputs_from_specs,
        parse_input,
        with_batch,
    )

    if choice.batch is not None and choice.batch < 1:
        raise UserError(f"batch must be >= 1, got {choice.batch}")
    own = "resolution" in spec.options and not spec.factory
    if spec.inputs:  # a model's own inputs (compare's MODEL@INPUT) win over the options for every model
        if own:
            raise UserError(f"{spec.text}: resolution= sets the input size: give it or @INPUT, not both")
        texts = list(spec.inputs)
    else:
        texts = list(choice.inputs or [])
        if texts and choice.input_shape is not None:
            raise UserError("give --input or --input-shape, not both")
        if (texts or choice.input_shape is not None) and (choice.resolution is not None or own):
            raise UserError("--resolution sets the input size: give it or --input/--input-shape, not both")
        if (texts or choice.input_shape is not None) and choice.seq_len is not None:
            raise UserError("--seq-len sets the default input's length: give it or --input/--input-shape, not both")
    if texts:
        try:
            inputs = inputs_from_specs([parse_input(t) for t in texts])
        except InputError as err:
            raise UserError(str(err)) from None
    elif choice.input_shape is not None:
        inputs = Inputs((InputSpec(parse_shape(choice.input_shape)),))
    elif getattr(model, "archprof_inputs", None) is not None:
        inputs = as_inputs(model.archprof_inputs)
    else:
        default = getattr(model, "default_input_shape", None)
        if default is None:
            size = choice.resolution or 224
            default = (choice.batch or 1, 3, size, size)
            if choice.resolution is None:
                shape = "x".join(map(str, default))
                typer.echo(
                    f"archprof: notice: {spec.text}: no input given; profiled at {shape} (--input or --input-shape set one)",
                    err=True,
                )
        inputs = Inputs((InputSpec(tuple(default)),))
    return with_batch(inputs, choice.batch) if choice.batch is not None else inputs


def profile_specs(
    specs: list[ModelSpec],
    overrides: dict[str, Any],
    choice: InputChoice,
    counting: Counting,
    checkpoint: str | None = None,
) -> list:
    from archprof.analysis.profile import profile
    from archprof.architectures.spec import build_from_spec, spec_label

    device = choice.device
    if device is Device.cuda:
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: CUDA is not available on this machine")
    if device is Device.meta and (choice.seed or choice.max_memory is not None):
        # the meta device allocates nothing and draws no values: both are for a real forward
        raise UserError(f"{'--seed' if choice.seed else '--max-memory'} is for a real forward: --device meta runs none")
    max_memory = parse_size(choice.max_memory)
    training = counting.training()
    profiles = []
    for spec in specs:
        options = builder_options(spec, overrides, choice)
        model = seeded(choice.seed, lambda spec=spec, options=options: build_from_spec(spec, device.value if device else "meta", options))
        if checkpoint is not None:
            from archprof.architectures.checkpoint import check_checkpoint

            check_checkpoint(model, checkpoint)
        p = profile(
            model, inputs=inputs_for(model, spec, choice), strict=counting.strict, name=spec_label(spec, overrides),
            device=device.value if device else None,
            seed=choice.seed, max_memory=max_memory, build=lambda spec=spec, options=options: build_from_spec(spec, "cpu", options),
            **training,
        )
        if spec.factory and not p.config:
            p.config = {**spec.options}
        for notice in p.notices:
            typer.echo(f"archprof: notice: {spec.text}: {notice}", err=True)
        profiles.append(p)
    return profiles


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with torch's global generator seeded: a model built on a real device gets the
    same initial weights for one --seed (profile() seeds its own rebuilds the same way)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def builder_options(spec: ModelSpec, overrides: dict[str, Any], choice: InputChoice) -> dict[str, Any]:
    """archprof's own options (--width, --resolution, --num-classes, --seq-len) for the builders
    that take them: a user factory's --resolution is its input size instead."""
    options = dict(overrides)
    if spec.factory and options:
        options.pop("resolution", None)  # choice.resolution: the input's size
        accepted = factory_parameters(spec) if options else None  # loads the factory: only when there is something to check
        refused = [k for k in options if accepted is not None and k not in accepted]
        if refused:
            raise UserError(f"{spec.name} takes no option {refused[0]!r} (it takes: {', '.join(sorted(accepted)) or 'none'})")
    if choice.seq_len is not None:
        if not spec.name.startswith("hf:"):
            raise UserError(f"--seq-len is for hf: language models, not {spec.text}")
        if choice.seq_len < 1:
            raise UserError(f"--seq-len must be >= 1, got {choice.seq_len}")
        options["seq_len"] = choice.seq_len
    return options


def factory_parameters(spec: ModelSpec) -> set[str] | None:
    """The keyword arguments a factory takes by name (None: it takes any, ``**kwargs``)."""
    import inspect

    from archprof.architectures.spec import load_factory

    try:
        parameters = inspect.signature(load_factory(spec.name)).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}


def render_models(
    profiles: list,
    groupings: list[str],
    out: OutputChoice,
    depth: int | None,
    latencies: list | None = None,
    layout: Any = None,
) -> None:
    from archprof.rendering.tables import model_tables
    from archprof.rendering.writers import models_to_csv, models_to_json

    emit_as(
        out,
        json=lambda: models_to_json(profiles, groupings, depth, latencies),
        csv=lambda: models_to_csv(profiles, groupings, depth, latencies),
        tables=lambda: model_tables(profiles, groupings, out.unit.value, depth, latencies),
        layout=layout,
    )


def emit_as(
    out: OutputChoice, *, json: Callable[[], str], csv: Callable[[], str], tables: Callable[[], list], layout: Any = None,
) -> None:
    """One result in the format asked for: JSON and CSV are data exports, the rest lay out tables
    (``layout``: the tables picked, their unit, LaTeX captions and labels)."""
    if out.fmt is Format.json:
        emit(json(), None, out.fmt.value, out.raw, out.output)
    elif out.fmt is Format.csv:
        emit(csv(), None, out.fmt.value, out.raw, out.output)
    else:
        emit(None, tables(), out.fmt.value, out.raw, out.output, layout)


def layout_for(command: str, out: OutputChoice) -> Any:
    """The layout of the tables from --scale, --table, --caption, --label and --siunitx, each
    refused where it would be ignored (a data export, another format)."""
    from archprof.rendering.writers import SCALES, Layout

    fmt, raw, scale, tables, caption, label, siunitx = out.fmt, out.raw, out.scale, out.table, out.caption, out.label, out.siunitx

    latex_only = [name for name, given in (("--caption", caption is not None), ("--label", label is not None),
                                           ("--siunitx", siunitx)) if given]
    if latex_only and fmt is not Format.latex:
        raise UserError(f"{latex_only[0]} is for LaTeX: add --format latex")
    if scale is not None:
        if FORMATS[fmt.value].writer is None:  # the console's tables and the data exports have no fixed unit
            raise UserError("--scale sets the unit of Markdown and LaTeX tables: add --format markdown or latex")
        if raw:
            raise UserError("--raw writes exact integers and --scale a unit: give one")
        if scale.upper() not in SCALES:
            raise UserError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    keys = [k.strip() for text in tables or [] for k in text.split(",")]
    if tables is not None and FORMATS[fmt.value].exports_data:
        raise UserError(f"--table picks tables of the table, markdown and latex formats; --format {fmt.value} exports all the data")
    if any(not k for k in keys):
        raise UserError(f"--table {','.join(tables or [])!r} names an empty table")
    if caption is not None and not caption.strip():
        raise UserError("--caption is empty")
    try:
        return Layout(None if scale is None else scale.upper(), tuple(keys) if tables is not None else None, caption,
                      label, siunitx, command)
    except ArchprofValueError as err:
        raise UserError(f"--{err}") from None


def model_options(width: float | None, resolution: int | None, num_classes: int | None) -> dict[str, Any]:
    given = {"width": width, "resolution": resolution, "num_classes": num_classes}
    return {k: v for k, v in given.items() if v is not None}


@command("compare")
def compare_command(
    models: Annotated[list[str], typer.Argument(autocompletion=complete_model, metavar="MODEL", help="Models to compare, e.g. mobilenet_v1 mobilenet_v2:width=0.5,resolution=160.")],
    shown: Views = group(Views, "per_stage", "per_block", "per_type", "per_layer", "per_part", "per_level", "per_stride"),
    choice: InputChoice = group(InputChoice, "batch", "inputs", "input_shape", "seq_len", "seed", "max_memory", "device"),
    out: OutputChoice = group(OutputChoice),
    counting: Counting = group(Counting),
    plot: PlotOption = None,
) -> None:
    """Compare models side by side: totals, ratios, shares.

    
    Examples:
      archprof compare mobilenet_v1 mobilenet_v2
      archprof compare resnet50 resnet101 resnet152 --per-stage -f markdown
      archprof compare mobilenet_v2 mobilenet_v2:width=0.5,resolution=160

    Totals side by side with each model's ratio to the first, then per-stage, per-block-type and
    per-layer-type tables with shares; the stages of different families are lined up by output
    stride. Each model carries its own options (NAME:key=value,...).
    """
    refuse_unread(out.fmt, out.raw, out.unit, plot)
    layout = layout_for("compare", out)
    if len(models) < 2:
        raise UserError("compare needs at least two models")
    if out.output is not None:
        check_writable(out.output)
    check_plot(plot)
    from archprof.analysis.compare import compare, lined_up
    from archprof.architectures.spec import parse_spec

    specs = [parse_spec(m) for m in models]
    by = views(shown)
    profiles = profile_specs(specs, {}, choice, counting)
    comparison = compare(profiles, by=lined_up(profiles, by), unit=out.unit.value)
    from archprof.rendering.figures import group_figure

    draw_plot(plot, lambda: group_figure(comparison.profiles, figure_grouping(list(comparison.by)), out.unit.value))
    render_models(comparison.profiles, list(comparison.by), out, comparison.depth, layout=layout)


@command("profile")
def profile_command(
    name: Annotated[str, typer.Argument(
        autocompletion=complete_model,
        metavar="NAME",
        help="A registered model (with :key=value options), package.module:callable or file.py:callable.",
    )],
    width: Annotated[float | None, typer.Option("--width", help="Width multiplier (MobileNets).")] = None,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    choice: InputChoice = group(InputChoice, "batch", "input_shape", "inputs", "seq_len", "seed", "max_memory"),
    shown: Views = group(Views, "per_stage", "per_block", "per_type", "per_layer", "per_stride", "layer_depth"),
    depth: NoDepthOption = None,
    device: DeviceOption = None,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", metavar="FILE", help="Check that a weights-only checkpoint fits the model first.")] = None,
    latency: Annotated[bool, typer.Option("--latency", help="Also measure real per-layer latency (on cpu, or cuda with --device cuda).")] = False,
    warmup: Annotated[int | None, typer.Option("--warmup", help="Untimed forwards before --latency measures (default 3).")] = None,
    repeats: Annotated[int | None, typer.Option("--repeats", help="Timed forwards for --latency, the median shown (default 10).")] = None,
    out: OutputChoice = group(OutputChoice),
    counting: Counting = group(Counting),
    plot: PlotOption = None,
) -> None:
    """Profile one model: totals and the grouped tables asked for.

    
    Examples:
      archprof profile resnet50 --per-stage
      archprof profile mobilenet_v2 --width 0.5 --resolution 160 -f csv -o v2.csv
      archprof profile torch.nn:Linear:in_features=8,out_features=4 --input 2x8

    NAME is a registered model (archprof list) with :key=value options, or a factory that returns
    an nn.Module: package.module:callable or path/to/file.py:callable.
    """
    refuse_unread(out.fmt, out.raw, out.unit, plot)
    layout = layout_for("profile", out)
    from archprof.architectures.spec import build_from_spec, parse_spec

    refuse_depth("profile", depth)
    shown.check()
    if out.output is not None:
        check_writable(out.output)
    check_plot(plot)
    spec = parse_spec(name)
    if not latency and (warmup is not None or repeats is not None):
        raise UserError(f"{'--warmup' if warmup is not None else '--repeats'} is for --latency: add --latency")
    warmup, repeats = 3 if warmup is None else warmup, 10 if repeats is None else repeats
    if warmup < 0 or repeats < 1:
        raise UserError(f"--warmup must be >= 0 and --repeats >= 1, got {warmup} and {repeats}")
    if latency and counting.mode.value == "train":
        raise UserError("--latency times an inference forward; --mode train counts a training step: give one")
    if latency and device is Device.meta:
        raise UserError("--latency times a real forward: --device cpu or cuda, not meta")
    overrides = model_options(width, resolution, num_classes)
    choice.resolution = resolution
    choice.device = None if latency and device is Device.cuda else device  # counts do not depend on the device
    profiles = profile_specs([spec], overrides, choice, counting, checkpoint)
    latencies = None
    if latency:
        from archprof.analysis.latency import measure_latency

        model = build_from_spec(spec, "cpu", builder_options(spec, overrides, choice))
        latencies = [measure_latency(model, profiles[0], device.value if device is Device.cuda else "cpu", warmup, repeats)]
    groupings = views(dataclasses.replace(shown, per_type=shown.per_type or latency))
    from archprof.rendering.figures import group_figure

    draw_plot(plot, lambda: group_figure(profiles, figure_grouping(groupings), out.unit.value))
    render_models(profiles, groupings, out, shown.layer_depth, latencies, layout=layout)


def options_of(config: type, names: tuple[str, ...] | None = None, given: bool = False) -> Callable[[Callable], Callable]:
    """The command's first parameter, a dict of ``config``'s options, becomes one option per field
    of the configuration dataclass (configs.py): its name, type, default and help come from the
    field and its metadata, so the command line keeps no copy of an architecture's options.
    Options the command line does not read as they are (``--dcn-stages 3,4,5``) are parsed here;
    an optional one left out is not passed (the configuration's default applies). ``names`` and
    ``given``: as ``configs.cli_options``."""
    from archprof.architectures.configs import cli_options

    options = cli_options(config, names, given)
    derived = [
        inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default,
                          annotation=Annotated[o.type, typer.Option(o.flag, help=o.help)])
        for o in options
    ]

    def parsed(values: dict[str, Any]) -> dict[str, Any]:
        given = {}
        for o in options:
            value = values[o.name]
            if o.parse is not None:
                parse, looks_like = o.parse
                try:
                    value = parse(value)
                except ValueError:
                    raise UserError(f"{o.flag} {value!r} is not {looks_like}") from None
            if value is not None:
                given[o.name] = value
        return given

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        first, *own = signature.parameters.values()
        required = [p for p in own if p.default is p.empty]  # the command's arguments, then the derived options
        in_place = signature.replace(parameters=[*required, first, *own[len(required):]])
        return expand(command, lambda parameter: (derived, parsed) if parameter.name == first.name else None, in_place)

    return decorate


@command("resnet")
@options_of(ResNetConfig)
def resnet_command(
    options: dict[str, Any],
    batch: BatchOption = None,
    shown: Views = group(Views, "per_stage", "per_block", "per_type", "per_layer", "per_stride", "layer_depth"),
    choice: InputChoice = group(InputChoice, "input_shape", "inputs", "seed", "max_memory", "device"),
    out: OutputChoice = group(OutputChoice),
    counting: Counting = group(Counting),
    plot: PlotOption = None,
) -> None:
    """Profile a ResNet of the seed's backbone family.

    
    Examples:
      archprof resnet --depth 101 --per-stage
      archprof resnet --depth 50 --groups 32 --width-per-group 4
      archprof resnet --stages FPN --backbone --dcn-stages 3,4,5 --modulated-dcn
    """
    refuse_unread(out.fmt, out.raw, out.unit, plot)
    layout = layout_for("resnet", out)
    shown.check()
    if out.output is not None:
        check_writable(out.output)
    check_plot(plot)
    if options["backbone"] and "num_classes" in options:
        raise UserError("--num-classes sets the classifier, which --backbone leaves out: give one")
    if "resolution" in options and (choice.input_shape is not None or choice.inputs):  # an --input sets the size instead
        raise UserError("--resolution sets the input size: give it or --input/--input-shape, not both")
    from archprof.architectures.spec import configured

    depth = options.pop("depth")
    name = f"resnet{depth}"
    if depth not in DEPTHS:
        raise UserError(f"--depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
    spec = configured(name, options)
    choice.batch = batch
    profiles = profile_specs([spec], {}, choice, counting)
    groupings = views(shown)
    from archprof.rendering.figures import group_figure

    draw_plot(plot, lambda: group_figure(profiles, figure_grouping(groupings), out.unit.value))
    render_models(profiles, groupings, out, shown.layer_depth, layout=layout)


@command("blocks")
def blocks_command(
    channels: Annotated[int, typer.Option("--channels", help="Input channels (C, M, d').")] = 64,
    out_channels: Annotated[int, typer.Option("--out-channels", help="Output channels (C', N, d'').")] = 64,
    size: Annotated[int, typer.Option("--size", help="Input height and width.")] = 56,
    stride: Annotated[int, typer.Option("--stride", help="Stride of the blocks' spatial (3x3 or depthwise) conv.")] = 1,
    expansion: Annotated[int, typer.Option("--expansion", "-t", help="The inverted residual's expansion t.")] = 6,
    out: OutputChoice = group(OutputChoice, "fmt", "output", "raw", "scale", "table", "caption", "label", "siunitx"),
    plot: PlotOption = None,
) -> None:
    """A ResNet bottleneck beside a MobileNetV2 inverted residual.

    
    Examples:
      archprof blocks
      archprof blocks --channels 256 --out-channels 256
      archprof blocks --channels 24 --out-channels 32 --stride 2 --expansion 6

    Beside them the basic block, the depthwise-separable block and a standard 3x3 conv, each
    traced and in closed form.
    """
    refuse_unread(out.fmt, out.raw)
    layout = layout_for("blocks", out)
    from archprof.analysis.blocks import BlockShapes, compare_blocks
    from archprof.rendering.tables import blocks_tables
    from archprof.rendering.writers import blocks_to_csv, blocks_to_json

    if out.output is not None:
        check_writable(out.output)
    check_plot(plot)
    comparison = compare_blocks(BlockShapes(channels, out_channels, size, stride, expansion))
    from archprof.rendering.figures import blocks_figure

    draw_plot(plot, lambda: blocks_figure(comparison))
    emit_as(out, layout=layout, json=lambda: blocks_to_json(comparison), csv=lambda: blocks_to_csv(comparison),
            tables=lambda: blocks_tables(comparison))


DETECTORS = ("fcos", "retinanet")


@command("detector")
@options_of(DetectorConfig, ("preset", "levels", "extra_from", "head_channels", "head_depth", "norm"), given=True)
def detector_command(
    options: dict[str, Any],
    name: Annotated[str, typer.Argument(autocompletion=complete_detector, metavar="DETECTOR", help="fcos or retinanet, optionally with :key=value options (e.g. fcos:centerness=reg).")],
    backbone: Annotated[str | None, typer.Option("--backbone", help="resnet50, resnet101, resnet152 or mobilenet_v2, with its own :key=value options (e.g. mobilenet_v2:width=0.5).")] = None,
    num_classes: NumClassesOption = None,
    choice: InputChoice = group(InputChoice, "inputs", "input_shape", "batch"),
    shown: Views = group(Views, "per_part", "per_level", "per_stage", "per_block", "per_type", "per_layer", "layer_depth"),
    depth: NoDepthOption = None,
    seed: SeedOption = 0,
    max_memory: MaxMemoryOption = None,
    device: DeviceOption = None,
    out: OutputChoice = group(OutputChoice),
    counting: Counting = group(Counting),
) -> None:
    """Profile a one-stage detector per part and pyramid level.

    
    Examples:
      archprof detector fcos
      archprof detector retinanet --preset torchvision --per-stage
      archprof detector fcos --backbone mobilenet_v2 --input-shape 1x3x512x512

    Backbone, FPN neck and a head shared across levels: totals, then per part and per pyramid
    level. The default input is the papers' 1x3x800x1333.
    """
    refuse_unread(out.fmt, out.raw, out.unit)
    layout = layout_for("detector", out)
    from archprof.architectures.spec import parse_spec, with_options

    refuse_depth("detector", depth, "--backbone resnet101")
    shown.check()
    if out.output is not None:
        check_writable(out.output)
    spec = parse_spec(name)
    if spec.name not in DETECTORS or spec.inputs:
        raise UserError(f"detector must be one of {', '.join(DETECTORS)} with optional :key=value options, got {name!r}")
    flags: dict[str, Any] = {}
    if backbone is not None:
        body = parse_spec(backbone)
        if body.factory or body.inputs or body.name.startswith("hf:"):
            raise UserError(f"--backbone {backbone!r}: a registered backbone with optional :key=value options, e.g. mobilenet_v2:width=0.5")
        flags["backbone"] = body.name
        if body.options:
            flags["backbone_options"] = body.options
    flags.update(options)  # the ones given
    if num_classes is not None:
        flags["num_classes"] = num_classes
    twice = sorted(set(flags) & set(spec.options))
    if twice:
        raise UserError(f"{twice[0]} is given both in {name!r} and as an option: give it once")
    choice.seed, choice.max_memory, choice.device = seed, max_memory, device
    profiles = profile_specs([with_options(spec, flags)], {}, choice, counting)
    render_models(profiles, views(shown, default=("part", "level")), out, shown.layer_depth, layout=layout)


@command("crosscheck")
def crosscheck_command(
    name: Annotated[str, typer.Argument(autocompletion=complete_model, metavar="MODEL", help="A registered model (with :key=value options) or a factory.")],
    width: Annotated[float | None, typer.Option("--width", help="Width multiplier (MobileNets).")] = None,
    resolution: ResolutionOption = None,
    num_classes: NumClassesOption = None,
    choice: InputChoice = group(InputChoice, "input_shape", "inputs"),
    out: OutputChoice = group(OutputChoice, unit=Annotated[Unit, typer.Option("--unit", help="The common unit every tool is converted to.")]),
) -> None:
    """Check the count against fvcore, thop and FlopCounterMode.

    
    Examples:
      archprof crosscheck mobilenet_v2
      archprof crosscheck resnet18 --unit flops
      archprof crosscheck mobilenet_v1 --format json -o crosscheck.json

    One real CPU forward at batch 1; every difference is attributed to a named convention.
    """
    refuse_unread(out.fmt, out.raw)  # --unit is honoured: every tool's count is converted to it, in every format
    layout = layout_for("crosscheck", out)
    from archprof.analysis.crosscheck import crosscheck
    from archprof.architectures.spec import build_from_spec, parse_spec
    from archprof.rendering.tables import crosscheck_tables
    from archprof.rendering.writers import crosscheck_to_csv, crosscheck_to_json

    if out.output is not None:
        check_writable(out.output)
    spec = parse_spec(name)
    given = choice.input_shape or choice.inputs or spec.inputs
    choice.batch, choice.resolution = None if given else 1, resolution  # batch 1 unless inputs are given
    model = build_from_spec(spec, "cpu", builder_options(spec, model_options(width, resolution, num_classes), choice))
    check = crosscheck(model, unit=out.unit.value, name=spec.text, inputs=inputs_for(model, spec, choice))
    emit_as(out, layout=layout, json=lambda: crosscheck_to_json(check), csv=lambda: crosscheck_to_csv(check),
            tables=lambda: crosscheck_tables(check))


@command("report")
def report_command(
    out: Annotated[str, typer.Option("--out", metavar="DIR", help="Directory for the reports (created if missing).")] = "reports",
) -> None:
    """Regenerate the papers' tables and figures.

    
    Examples:
      archprof report
      archprof report --out paper/tables

    The tables as CSV, Markdown and LaTeX and the figures as SVG and PNG, indexed in
    DIR/README.md.
    """
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from archprof.rendering.figures import FigureError, _pyplot
    from archprof.rendering.report import PROFILE_COUNT, write_reports

    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    if not target.parent.is_dir():
        raise UserError(f"--out {out}: directory {target.parent} does not exist")
    try:
        _pyplot()
    except FigureError as err:
        raise UserError(str(err)) from None
    console = Console(stderr=True)  # progress is not a result: stderr, and only on a terminal
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("profiling", total=PROFILE_COUNT)
        written = write_reports(target, lambda what: progress.update(task, advance=1, description=f"profiling {what}"))
    typer.echo(f"wrote {len(written)} files to {target}/ (index: {target / 'README.md'})", file=results())


@command("list")
def list_command() -> None:
    """List the registered models with their options and defaults.

    
    Examples:
      archprof list
      archprof profile mobilenet_v2:width=0.75,resolution=192
    """
    from archprof.rendering.console import print_model_list

    print_model_list([model_info(name) for name in list_models()])
