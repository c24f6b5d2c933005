"""`measure_latency` and `crosscheck` run the user's own model for real: afterwards it is as they
found it (training flags, parameters, gradients, buffers, hooks, attributes, device). And the
cross-check's verdicts are data: the rendering only lays them out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archprof.analysis.crosscheck import EXPLAINED, FAILED, UNEXPLAINED, Crosscheck, PeerReport, crosscheck
from archprof.analysis.latency import measure_latency
from archprof.analysis.profile import profile


class Counter(nn.Module):
    """A head whose forward writes a buffer in place, as a step counter does."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x)


def user_model() -> tuple[nn.Module, list[int]]:
    """In training mode but for one layer, with gradients set, one frozen weight and a user's hook."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), Counter())
    model.train()
    model[2].eval()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    model[0].weight.requires_grad_(False)
    calls: list[int] = []
    model[1].register_forward_hook(lambda *_: calls.append(1))
    return model, calls


def state(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "params": {n: (p, p.detach().clone(), p.requires_grad, p.grad, None if p.grad is None else p.grad.clone(), p.device)
                   for n, p in model.named_parameters()},
        "buffers": {n: (b, b.clone()) for n, b in model.named_buffers()},
        "hooks": [(dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks)) for m in model.modules()],
        "attributes": [sorted(vars(m)) for m in model.modules()],
    }


def assert_same(before: dict, after: dict) -> None:
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"]
    assert after["attributes"] == before["attributes"]
    for name, (p, value, requires_grad, grad, grad_value, device) in before["params"].items():
        q, now, now_requires, now_grad, now_grad_value, now_device = after["params"][name]
        assert q is p and torch.equal(now, value) and now_requires == requires_grad and now_device == device, name
        assert now_grad is grad and torch.equal(now_grad_value, grad_value), name
    for name, (b, value) in before["buffers"].items():
        now_b, now = after["buffers"][name]
        assert now_b is b and torch.equal(now, value), name


def test_measure_latency_leaves_the_model_as_it_found_it():
    model, calls = user_model()
    counted = profile(model, input_shape=(1, 3, 8, 8), device="meta")
    before = state(model)
    report = measure_latency(model, counted, warmup=1, repeats=2)
    assert_same(before, state(model))
    assert report.repeats == 2 and calls  # the forwards ran, the user's hook with them
    assert model[-1].calls.item() == 0  # the counter the timed forwards bumped is put back


def test_crosscheck_leaves_the_model_as_it_found_it():
    model, _ = user_model()
    before = state(model)
    crosscheck(model, (1, 3, 8, 8))
    assert_same(before, state(model))
    assert model[-1].calls.item() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latency_on_cuda_times_a_copy_and_leaves_the_model_on_the_cpu():
    model, _ = user_model()
    counted = profile(model, input_shape=(1, 3, 8, 8), device="meta")
    before = state(model)
    assert measure_latency(model, counted, device="cuda", warmup=1, repeats=2).device == "cuda"
    assert_same(before, state(model))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_verdicts_split_each_difference_into_explained_and_unexplained():
    # archprof 100 MACs at one layer; thop 90, all of it "no bias"; fvcore 95 where it was predicted 90 (5 unexplained);
    # FlopCounterMode 200 FLOPs = 100 MACs; a peer that failed.
    check = Crosscheck("m", "macs", {"fc": 100}, [
        PeerReport("thop", "MACs", total=90, actual={"fc": 90}, predicted={"fc": 90}, explained={"fc": {"no bias": -10}}),
        PeerReport("fvcore", "MACs", total=95, actual={"fc": 95}, predicted={"fc": 90}, explained={"fc": {"no bias": -10}}),
        PeerReport("FlopCounterMode", "FLOPs", total=200, actual={"fc": 200}, predicted={"fc": 200}),
        PeerReport("broken", "MACs", error="RuntimeError: no"),
    ])
    verdicts = {v.tool: v for v in check.verdicts()}
    assert list(verdicts) == ["archprof", "thop", "fvcore", "FlopCounterMode", "broken"]
    thop, fvcore, counter, broken = (verdicts[t] for t in ("thop", "fvcore", "FlopCounterMode", "broken"))
    assert (thop.common, thop.difference, thop.explained, thop.unexplained, thop.verdict) == (90, -10, -10, 0, EXPLAINED)
    assert thop.conventions == {"no bias": -10}
    assert (fvcore.difference, fvcore.explained, fvcore.unexplained, fvcore.verdict) == (-5, -10, 5, UNEXPLAINED)
    assert (counter.reported, counter.common, counter.difference, counter.verdict) == (200, 100, 0, EXPLAINED)
    assert broken.reported is None and broken.verdict == f"{FAILED}: RuntimeError: no"
    (layer,) = check.differing_layers()
    assert (layer.layer, layer.archprof, layer.peers) == ("fc", 100, {"thop": 90, "fvcore": 95, "FlopCounterMode": 100})
    assert layer.why == ["thop: no bias", "fvcore: no bias, UNEXPLAINED"]
