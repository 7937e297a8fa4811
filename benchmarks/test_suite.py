"""The suite: model x state x batch, generated from the state registry (``IS_GRIDS``) and run
by the one generic benchmark, :func:`inference_scale._suite_test.test_state`. Each model's fp32
baseline is timed in the same run, right before its other states at that batch size.

* every precision and int8 state of the registry on the picked architectures and trained
  LeNet (the course module's "choose the architecture" and "quantize" questions);
* other runtimes (torch.compile, ONNX Runtime, OpenVINO) on ResNet-50 and swin_t;
* channel pruning on ResNet-50 (a smaller dense model, really faster);
* unstructured pruning on LeNet (no speedup expected: dense kernels still multiply zeros);
* CSR on a 1024x1024 Linear (pays off only at high sparsity).

Compile cost sets two defaults. Inductor needs minutes per model and batch size on a 2-core
machine with a cold cache, so transformers get neither int8-static nor int8-dynamic (which is
only fast compiled) unless --is-all-int8; under --benchmark-disable (the CI smoke run) nothing
is compiled.
"""

from __future__ import annotations

from benchmarks._harness import lenet_subject, linear_subject
from inference_scale._suite_test import test_state
from inference_scale.models import pick_architectures
from inference_scale.states import list_states
from inference_scale.states.pruning import CSR, PruneChannels, PruneL1, PruneL1Masked
from inference_scale.suite import Grid

__all__ = ["IS_GRIDS", "IS_SUBJECTS", "test_state"]

# Every registered precision and int8 state, read from the registry: a new one joins the
# architecture grid without an edit here (and skips with its reason where it cannot run).
PRECISION_AND_INT8 = tuple(c.example().slug for c in list_states() if c.family in ("precision", "quantize"))
# Every other runtime (torch.compile, ONNX Runtime, OpenVINO), beside the project's own int8
# so that the fastest state per model and batch is found across runtimes in one run.
RUNTIMES = tuple(c.example().slug for c in list_states() if c.family == "runtime")

IS_SUBJECTS = {"lenet": lenet_subject, "linear-1024": linear_subject}
# The pruning grids name their states through the registry's classes; each grid's fp32
# baseline is added by make_cases (first, once per model and batch).
IS_GRIDS = [
    Grid((*pick_architectures(), "lenet"), PRECISION_AND_INT8, (1,)),
    # Batch 8 for ResNet-50 and LeNet only: EfficientNet-V2-S at b8 alone took ~3 min of the
    # main job (3.3 s per fp32 call, a minute of int8 compile) for one more ratio like b1's.
    Grid(("resnet50", "lenet"), PRECISION_AND_INT8, (8,)),
    Grid(("resnet50", "swin_t"), RUNTIMES, (1, 8)),
    Grid(("resnet50",), tuple(PruneChannels(pct=p).slug for p in (30, 50)), (1, 8)),
    Grid(("lenet",), tuple(s(pct=p).slug for p in (20, 50, 90) for s in (PruneL1Masked, PruneL1)), (100,)),
    Grid(("linear-1024",), tuple(CSR(pct=p).slug for p in (90, 95, 99)), (1, 32)),
]
