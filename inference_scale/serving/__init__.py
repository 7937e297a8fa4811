"""Serving: the highest Poisson query rate a state sustains under a p99 budget, measured by a
real load test (MLPerf LoadGen's Server-scenario search) and predicted by a discrete-event
simulator fed by service times per batch size; replicas to serve a target rate, on paper."""

from __future__ import annotations

from inference_scale.serving.capacity import Plan, plan_replicas, replicas_for
from inference_scale.serving.run import serve
from inference_scale.serving.search import Policy, ServingError, min_queries
from inference_scale.serving.simulate import simulate, simulated_highest_rate

__all__ = [
    "Plan",
    "Policy",
    "ServingError",
    "min_queries",
    "plan_replicas",
    "replicas_for",
    "serve",
    "simulate",
    "simulated_highest_rate",
]
