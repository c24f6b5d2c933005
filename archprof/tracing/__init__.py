"""Tracing: one forward pass at the dispatcher, every op costed by a registered rule."""

from archprof.tracing.rules import COST_RULES, Cost, CostRule, register_cost_rule
from archprof.tracing.tracer import OpEvent, Trace, Tracer

__all__ = ["COST_RULES", "Cost", "CostRule", "OpEvent", "Trace", "Tracer", "register_cost_rule"]
