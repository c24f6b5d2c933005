"""Any model, any input: positional, keyword and nested inputs, input specs, factory options as
Python literals, configurations of any kind, lazy modules, and the CPU fallback's real data.

Every count is a closed form written beside it: a Linear(i, o) on n rows is n x i x o MACs, an
embedding lookup costs nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import types
import warnings

import pytest
import torch
from torch import nn

import archprof
from archprof.architectures.spec import parse_options, parse_spec
from archprof.cli import run
from archprof.tracing.inputs import InputSpec, parse_input


class TwoInputs(nn.Module):
    """image features and a token sequence, the second optional; plus a flag that is no tensor."""

    def __init__(self):
        super().__init__()
        self.image = nn.Linear(16, 8, bias=False)
        self.text = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 4, bias=False)

    def forward(self, x, ids=None, *, scale: float = 1.0, pool: bool = True):
        h = self.image(x)
        if ids is not None:
            h = h + self.text(ids).mean(1)
        h = self.head(h) * scale
        return h.mean(0) if pool else h


# image Linear(16, 8) and head Linear(8, 4) on B rows: B x (16 x 8 + 8 x 4) = 160 B MACs.
def two_inputs_macs(batch: int) -> int:
    return batch * (16 * 8 + 8 * 4)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_positional_keyword_and_mixed_inputs_count_the_same_forward(device):
    x, ids = torch.randn(3, 16), torch.randint(0, 50, (3, 5))
    forms = [
        dict(inputs=x),
        dict(inputs=(x,)),
        dict(inputs=(x, ids)),
        dict(inputs={"x": x, "ids": ids}),
        dict(args=(x,), kwargs={"ids": ids, "scale": 2.0, "pool": False}),
        dict(inputs=(InputSpec((3, 16)), InputSpec((3, 5), torch.int64))),
    ]
    for form in forms:
        p = archprof.profile(TwoInputs(), device=device, **form)
        assert p.totals.macs == two_inputs_macs(3), form
    p = archprof.profile(TwoInputs(), kwargs={"x": x, "ids": ids}, device=device)
    assert [(i.path, i.shape, i.dtype) for i in p.inputs] == [
        ('kwargs["x"]', (3, 16), "float32"), ('kwargs["ids"]', (3, 5), "int64")
    ]


class ListOfImages(nn.Module):
    """A detector-style forward: a list of images of different sizes, and a dict of extras."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)

    def forward(self, images: list[torch.Tensor], extras: dict | None = None):
        outs = [self.conv(image[None]) for image in images]
        if extras is not None:
            outs += [self.conv(t) for t in extras["more"]]
        return outs


def test_a_list_of_images_and_nested_dicts_are_inputs():
    # conv 3x3, 3 -> 4 channels: (H - 2)(W - 2) x 4 x 27 MACs per image.
    def conv(h, w):
        return (h - 2) * (w - 2) * 4 * 27

    images = [torch.randn(3, 10, 12), torch.randn(3, 8, 8)]
    for device in ("meta", "cpu"):
        p = archprof.profile(ListOfImages(), inputs=(images,), device=device)
        assert p.totals.macs == conv(10, 12) + conv(8, 8)
        p = archprof.profile(
            ListOfImages(), args=([InputSpec((3, 6, 6))],), kwargs={"extras": {"more": [InputSpec((2, 3, 5, 5))]}}, device=device
        )
        assert p.totals.macs == conv(6, 6) + 2 * conv(5, 5)
        assert [i.path for i in p.inputs] == ["args[0][0]", 'kwargs["extras"]["more"][0]']


class TokenModel(nn.Module):
    def __init__(self, vocab: int = 1000):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.out = nn.Linear(32, 10, bias=False)

    def forward(self, input_ids, attention_mask):
        seen = attention_mask.sum()  # data: 0 would skip the layer, as a padded batch could
        return self.out(self.embed(input_ids)) if seen > 0 else None


def test_integer_specs_are_valid_token_ids_and_masks_of_ones_on_a_real_device():
    # On the CPU the ids must lie below the vocabulary (1000, read from the first embedding) or
    # the lookup fails; the mask is all ones so the Linear(32, 10) runs: 2 x 7 x 32 x 10 MACs.
    specs = {"input_ids": InputSpec((2, 7), torch.int64), "attention_mask": InputSpec((2, 7), torch.int64)}
    with pytest.warns(archprof.ArchprofNotice):  # `seen > 0` is data: meta cannot decide it
        p = archprof.profile(TokenModel(), kwargs=specs)
    assert (p.device, p.totals.macs) == ("cpu", 2 * 7 * 32 * 10)
    p = archprof.profile(TokenModel(vocab=5), kwargs={**specs, "input_ids": InputSpec((2, 7), torch.int64, 0, 5)}, device="cpu")
    assert p.totals.macs == 2 * 7 * 32 * 10


def test_input_errors_name_the_input():
    with pytest.raises(archprof.ProfileError, match="takes no input 'token_ids' \\(it takes: input_ids, attention_mask\\)"):
        archprof.profile(TokenModel(), kwargs={"token_ids": InputSpec((1, 4), torch.int64)})
    with pytest.raises(archprof.ProfileError, match="missing a required argument: 'attention_mask'"):
        archprof.profile(TokenModel(), kwargs={"input_ids": InputSpec((1, 4), torch.int64)})
    with pytest.raises(archprof.ProfileError, match=r"not both"):
        archprof.profile(TokenModel(), inputs=(), args=())
    with pytest.raises(archprof.ProfileError, match=r"input kwargs\[\"x\"\]"):
        archprof.profile(TwoInputs(), kwargs={"x": InputSpec((2**40, 2**40))}, device="cpu", max_memory=2**90)


@pytest.mark.parametrize(
    ("text", "name", "spec"),
    [
        ("1x3x224x224", None, InputSpec((1, 3, 224, 224))),
        ("1,3,32,32", None, InputSpec((1, 3, 32, 32))),
        ("input_ids=1x128:int64", "input_ids", InputSpec((1, 128), torch.int64)),
        ("ids=2x16:long:0..50257", "ids", InputSpec((2, 16), torch.int64, 0, 50257)),
        ("mask=2x16:bool", "mask", InputSpec((2, 16), torch.bool)),
        ("x=4x8:bf16", "x", InputSpec((4, 8), torch.bfloat16)),
    ],
)
def test_input_specs_parse_as_the_readme_writes_them(text, name, spec):
    assert parse_input(text) == (name, spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x3xabc", "the shape must be integers"),
        ("1x3:float33", "'float33' is neither a dtype"),
        ("1x8:0..5", "a value range is for integer inputs"),
        ("1x8:int64:5..5", "is empty"),
        ("2nd=1x8", "is not an argument name"),
        ("1x3x32x32,1x1x32x32", "the shape must be integers"),
        ("ids=8x32:int64:int32", "two dtypes"),
        ("ids=8x32:int64:0..5:1..3", "two value ranges"),
    ],
)
def test_bad_input_specs_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_input(text)


def test_factory_options_are_python_literals():
    options = parse_options("weights=None,pretrained=True,size=(2,3),scales=[0.5,1.0],name=abc,t='a,b',n=-2,f=1e3,w=[x,y]")
    assert options == {
        "weights": None, "pretrained": True, "size": (2, 3), "scales": [0.5, 1.0], "name": "abc", "t": "a,b", "n": -2,
        "f": 1000.0, "w": ["x", "y"],
    }
    assert parse_options("flag=true,other=FALSE,missing=none,empty=") == {"flag": True, "other": False, "missing": None, "empty": ""}
    with pytest.raises(ValueError, match="option 'a' is given twice"):
        parse_options("a=1,a=2")
    spec = parse_spec("torchvision.models.detection:fasterrcnn_resnet50_fpn:weights=None,weights_backbone=None")
    assert spec.factory and spec.options == {"weights": None, "weights_backbone": None}
    spec = parse_spec("mobilenet_v2:width=0.5@1x3x160x160")
    assert (spec.name, spec.options, spec.inputs) == ("mobilenet_v2", {"width": 0.5}, ("1x3x160x160",))


@dataclasses.dataclass
class GPTConfig:  # the nanoGPT pattern: a dataclass config on the model
    n_layer: int = 2
    dtype: torch.dtype = torch.float16
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))


class Configured(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


class RaisingConfig:
    @property
    def broken(self):
        raise RuntimeError("no")

    def to_dict(self):
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (GPTConfig(), {"n_layer": 2, "dtype": "float16", "device": "cpu"}),
        (types.SimpleNamespace(a=1, b=torch.float32, _private=2), {"a": 1, "b": "float32"}),
        ({"d": torch.bfloat16, "x": [1, (2, 3)], "inf": float("inf")}, {"d": "bfloat16", "x": [1, [2, 3]], "inf": "inf"}),
        (RaisingConfig(), {}),
        (42, {"value": 42}),
    ],
)
def test_any_model_config_serializes_and_never_fails_a_profile(config, expected):
    p = archprof.profile(Configured(config), (1, 2))
    assert p.config == expected
    json.dumps(p.config)


def test_lazy_modules_are_materialized_and_counted_like_their_eager_counterparts():
    lazy = nn.Sequential(nn.LazyConv2d(8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    eager = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    p, q = archprof.profile(lazy, (2, 3, 8, 8)), archprof.profile(eager, (2, 3, 8, 8))
    # conv: 2 x 36 positions x 8 x 27; linear: 2 x 288 x 10.
    assert p.totals.macs == q.totals.macs == 2 * 36 * 8 * 27 + 2 * 288 * 10
    assert p.totals.params == q.totals.params == 8 * 27 + 8 + 288 * 10 + 10
    assert type(lazy[0]) is nn.LazyConv2d and isinstance(lazy[0].weight, nn.parameter.UninitializedParameter)


class Cache(nn.Module):
    """Writes into itself during forward, as torchvision's anchor generators cache anchors."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.cache: dict = {}
        self.seen: list = []

    def forward(self, x):
        self.cache[tuple(x.shape)] = torch.zeros(3, device=x.device)
        self.seen.append(x.shape[0])
        self.last = x
        self.fc.training = True
        return self.fc(x)


def test_whatever_a_forward_writes_into_the_model_is_restored():
    model = Cache().train()
    model.fc.eval()
    archprof.profile(model, (2, 4))
    assert (model.cache, model.seen, hasattr(model, "last")) == ({}, [], False)
    assert (model.training, model.fc.training) == (True, False)


def test_a_real_shape_error_is_reported_from_meta_naming_the_layer_with_no_fallback():
    model = nn.Sequential(nn.Linear(10, 5), nn.Sequential(nn.Linear(6, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", archprof.ArchprofNotice)  # a fallback would warn
        with pytest.raises(archprof.ProfileError, match=r"forward failed at input \[1, 3, 65536, 65536, 10\] in 1\.0 \(Linear\)"):
            archprof.profile(model, (1, 3, 65536, 65536, 10))


def test_a_real_forward_above_the_memory_limit_is_refused_before_it_allocates():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    # 4 x 8192 x 8192 float32 = 1 GiB of input
    with pytest.raises(archprof.ProfileError, match=r"needs at least 1\.00 GiB .* above the limit of 512\.00 MiB"):
        archprof.profile(Branchy(), (4, 8192, 8192), max_memory=512 * 2**20)


def test_a_model_built_on_meta_falls_back_with_initialized_weights_not_zeros():
    class GatedByWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 8, bias=False)
            self.b = nn.Linear(8, 8, bias=False)

        def forward(self, x):
            h = self.a(x)
            return self.b(h) if bool(h.abs().sum() > 0) else h  # zero weights would skip b

    with torch.device("meta"):
        model = GatedByWeights()
    with pytest.warns(archprof.ArchprofNotice):
        p = archprof.profile(model, (2, 8))
    assert p.totals.macs == 2 * 2 * 8 * 8
    assert model.a.weight.device.type == "meta"


# --- the command line -----------------------------------------------------------------------


def cli(capsys, *args):
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def total_macs(csv_text: str, every: bool = False):
    """The macs column of the CSV's total rows."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    totals = [int(r["macs"]) for r in rows if r["grouping"] == "total"]
    return totals if every else totals[0]


def test_cli_inputs_positional_named_and_integer(capsys, tmp_path):
    factory = tmp_path / "models.py"
    factory.write_text(
        "import torch\nfrom torch import nn\n"
        "class TokenModel(nn.Module):\n"
        "    def __init__(self, vocab=1000):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(vocab, 32)\n"
        "        self.out = nn.Linear(32, 10, bias=False)\n"
        "    def forward(self, input_ids, attention_mask=None):\n"
        "        h = self.embed(input_ids)\n"
        "        return self.out(h if attention_mask is None else h * attention_mask[..., None])\n"
        "def build(vocab=1000):\n"
        "    return TokenModel(vocab)\n"
    )
    target = f"{factory}:build"
    code, out, err = cli(capsys, "profile", target, "--input", "2x7:int64", "--format", "json")
    assert (code, err) == (0, "")
    model = json.loads(out)["models"][0]
    assert model["totals"]["macs"] == 2 * 7 * 32 * 10
    assert model["inputs"] == [{"path": "args[0]", "shape": [2, 7], "dtype": "int64"}]
    code, out, err = cli(
        capsys, "profile", target, "--input", "input_ids=1x9:int64:0..1000", "--input", "attention_mask=1x9:int64",
        "--device", "cpu", "--format", "csv",
    )
    assert code == 0 and total_macs(out) == 9 * 32 * 10
    for bad, message in [
        (["--input", "1x9:int65"], "'int65' is neither a dtype"),
        (["--input", "ids=1x9:int64"], "the model's forward takes no input 'ids' (it takes: input_ids, attention_mask)"),
        (["--input", "1x9"], "forward failed at input [1, 9] in embed (Embedding): RuntimeError"),
        (["--input", "1x9:int64", "--input-shape", "1x9"], "give --input or --input-shape, not both"),
        (["--input", "a=1x9:int64", "--input", "a=1x9:int64"], "input 'a' is given twice"),
    ]:
        path = tmp_path / "out.json"
        code, out, err = cli(capsys, "profile", target, *bad, "-o", str(path))
        assert (code, out, path.exists()) == (2, "", False), bad
        assert err.count("\n") == 1 and message in err, err


def test_cli_options_for_user_factories(capsys):
    # --resolution is a user model's input size (conv 3x3 at 32x32: 30 x 30 x 8 x 27 MACs).
    conv = "torch.nn:Conv2d:in_channels=3,out_channels=8,kernel_size=(3,3),bias=False"
    code, out, err = cli(capsys, "profile", conv, "--resolution", "32", "--format", "csv")
    assert code == 0 and total_macs(out) == 30 * 30 * 8 * 27
    code, out, err = cli(capsys, "profile", conv, "--width", "2")
    assert code == 2 and "takes no option 'width'" in err
    code, out, err = cli(capsys, "profile", conv, "--format", "csv")  # no input chosen: a notice says which
    assert code == 0 and "no input given; profiled at 1x3x224x224" in err and total_macs(out) == 222 * 222 * 8 * 27


def test_compare_takes_an_input_per_model_and_for_all(capsys):
    code, out, err = cli(capsys, "compare", "mobilenet_v2@1x3x160x160", "mobilenet_v2", "--format", "json")
    assert code == 0
    small, full = json.loads(out)["models"]
    assert (small["input_shape"], full["input_shape"]) == ([1, 3, 160, 160], [1, 3, 224, 224])
    assert full["totals"]["macs"] == 300_774_272  # torchvision's mobilenet_v2 "0.30 GFLOPS" at 224
    lin = "torch.nn:Linear:in_features=8,out_features=4,bias=False"
    code, out, err = cli(capsys, "compare", lin, lin.replace("out_features=4", "out_features=2"), "--input-shape", "5x8", "--format", "csv")
    assert code == 0 and total_macs(out, every=True) == [5 * 8 * 4, 5 * 8 * 2]


class Tied(nn.Module):  # an LM head that shares the embedding (GPT-2, T5)
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 50, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, ids):
        return self.out(self.embed(ids))


def test_tied_weights_stay_tied_when_a_meta_built_model_runs_on_the_cpu():
    with torch.device("meta"):
        model = Tied()
    p = archprof.profile(model, inputs=InputSpec((2, 5), torch.int64), device="cpu")
    assert (p.totals.macs, p.totals.params) == (2 * 5 * 8 * 50, 50 * 8)  # the tied matrix counted once


def test_a_model_with_tied_weights_on_the_cpu_profiles_on_meta_with_them_tied():
    # torch.func.functional_call refuses two tensors for two tied names: the stand-ins stay tied
    p = archprof.profile(Tied(), inputs=InputSpec((2, 5), torch.int64), device="meta")
    assert (p.device, p.totals.macs, p.totals.params) == ("meta", 2 * 5 * 8 * 50, 50 * 8)


def test_crosscheck_takes_several_positional_inputs_and_refuses_keyword_ones(capsys, tmp_path):
    factory = tmp_path / "two.py"
    factory.write_text(
        "from torch import nn\n"
        "class Two(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Linear(8, 4, bias=False)\n"
        "        self.b = nn.Linear(6, 4, bias=False)\n"
        "    def forward(self, x, y):\n"
        "        return self.a(x) + self.b(y)\n"
        "def build():\n"
        "    return Two()\n"
    )
    code, out, err = cli(capsys, "crosscheck", f"{factory}:build", "--input", "3x8", "--input", "3x6", "--format", "json")
    assert code == 0, err
    check = json.loads(out)
    # 3 x 8 x 4 + 3 x 6 x 4 = 168 MACs, and every peer agrees on two Linears without bias
    assert check["archprof"]["total"] == 168 and check["archprof"]["layers"] == {"a": 96, "b": 72, "(model)": 0}
    assert {p["name"]: p["total"] for p in check["peers"]}["fvcore"] == 168
    code, out, err = cli(capsys, "crosscheck", f"{factory}:build", "--input", "x=3x8", "--input", "y=3x6")
    assert (code, out) == (2, "") and "keyword inputs (x, y) cannot be cross-checked" in err and err.count("\n") == 1


# --- what a reviewer broke, pinned -------------------------------------------------------------


def test_seed_makes_a_factorys_real_forward_repeatable(capsys, tmp_path):
    # the count of Linear g depends on how many rows of l(x) are positive: data and weights
    factory = tmp_path / "dd.py"
    factory.write_text(
        "from torch import nn\n"
        "class DD(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = nn.Linear(4, 4)\n"
        "        self.g = nn.Linear(4, 4, bias=False)\n"
        "    def forward(self, x):\n"
        "        y = self.l(x)\n"
        "        return self.g(y[y[:, 0] > 0])\n"
        "def build():\n"
        "    return DD()\n"
    )
    counts = set()
    for _ in range(3):
        code, out, err = cli(capsys, "profile", f"{factory}:build", "--input-shape", "100x4", "--seed", "7", "--device", "cpu",
                             "--format", "csv")
        assert code == 0, err
        counts.add(total_macs(out))
    assert len(counts) == 1


class Anchors:
    def __init__(self):
        self.cache = {}

    def get(self, x):
        key = tuple(x.shape)
        if key not in self.cache:
            self.cache[key] = torch.zeros(x.shape[-1], device=x.device)
        return self.cache[key]


class WritesEverywhere(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 4)
        self.anchors = Anchors()  # a helper object's cache, as torchvision's anchor generators keep
        self.state = types.SimpleNamespace(step=0)
        self.count = torch.zeros(())
        self.nested = {"a": [torch.zeros(2)]}

    def forward(self, x):
        self.state.step += 1
        self.count += 1
        self.nested["a"][0].add_(1)
        with torch.no_grad():
            self.l.weight.add_(1)
        return self.l(x) + self.anchors.get(x)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_helper_objects_tensor_attributes_and_weights_written_by_forward_are_restored(device):
    model = WritesEverywhere()
    weight = model.l.weight.clone()
    archprof.profile(model, (2, 4), device=device)
    assert (model.anchors.cache, model.state.step, model.count.item(), model.nested["a"][0].tolist()) == ({}, 0, 0.0, [0.0, 0.0])
    assert torch.equal(model.l.weight, weight)
    assert model(torch.randn(2, 4)).shape == (2, 4)  # still usable: no meta tensor left in a cache


def test_a_config_property_that_raises_does_not_fail_the_profile():
    class PropertyConfig(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)

        @property
        def config(self):
            raise RuntimeError("no config")

        def forward(self, x):
            return self.l(x)

    assert archprof.profile(PropertyConfig(), (1, 2)).config == {}


def test_batch_resizes_named_tuples_and_any_mapping_is_an_input():
    import collections

    from archprof.tracing.inputs import Inputs, with_batch

    pair = collections.namedtuple("Pair", "a b")
    resized = with_batch(Inputs((pair(torch.randn(2, 8), InputSpec((2, 8))),)), 3)
    assert resized.args[0] == pair(InputSpec((3, 8), torch.float32), InputSpec((3, 8)))

    class FromMapping(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(8, 2, bias=False)

        def forward(self, d):
            return self.l(d["a"]).sum() + self.l(d["b"][0]).sum()

    for device in ("meta", "cpu"):  # (2 + 1) rows x 8 x 2
        inputs = (collections.UserDict(a=InputSpec((2, 8)), b=[torch.randn(1, 8)]),)
        assert archprof.profile(FromMapping(), args=inputs, device=device).totals.macs == 3 * 8 * 2


def test_lazy_buffers_and_data_dependent_lazy_models_are_profiled():
    assert archprof.profile(nn.LazyBatchNorm2d(), (1, 2, 6, 6)).totals.flops == 2 * 72  # inference BN, 2 per element

    class LazyThenBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.LazyLinear(4)
            self.g = nn.Linear(4, 4)

        def forward(self, x):
            y = self.l(x)
            return self.g(y) if y.sum() > -1e9 else y

    with pytest.warns(archprof.ArchprofNotice):
        assert archprof.profile(LazyThenBranch(), (2, 8)).totals.macs == 2 * 8 * 4 + 2 * 4 * 4


def test_an_error_that_merely_mentions_meta_words_is_not_a_meta_limitation():
    class Genuine(nn.Module):
        def forward(self, x):
            if x.shape[-1] != 4:
                raise ValueError("metadata says 4 features")
            return x

    with pytest.raises(archprof.ProfileError, match=r"forward failed at input \[2, 5\] in \(model\) \(Genuine\): ValueError"):
        archprof.profile(Genuine(), (2, 5))


def test_a_models_own_input_in_compare_wins_over_the_global_one(capsys):
    code, out, err = cli(capsys, "compare", "mobilenet_v2@1x3x160x160", "mobilenet_v2", "--input-shape", "1x3x96x96", "--format", "json")
    assert code == 0, err
    assert [m["input_shape"] for m in json.loads(out)["models"]] == [[1, 3, 160, 160], [1, 3, 96, 96]]


def test_resnet_and_detector_take_input_too(capsys):
    # batch 2 at 160: resnet50's MACs scale with positions; the 2048 x 1000 fc runs once per image
    code, out, err = cli(capsys, "resnet", "--depth", "50", "--input", "2x3x160x160", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["models"][0]["input_shape"] == [2, 3, 160, 160]
    code, out, err = cli(capsys, "resnet", "--depth", "50", "--input-shape", "2x3x160x160", "--format", "csv")
    assert code == 0 and total_macs(out) == 4_174_643_200
    code, out, err = cli(capsys, "detector", "fcos", "--input", "1x3x512x512", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["models"][0]["input_shape"] == [1, 3, 512, 512]
