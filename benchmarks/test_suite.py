"""The suite: model x state x batch, generated from the state registry (``IS_GRIDS``) and run
by the one generic benchmark, :func:`inference_scale.measure._suite_test.test_state`. Each model's fp32
baseline is timed in the same run, right before its other states at that batch size.

* every precision and int8 state of the registry on the picked architectures and trained
  LeNet (the course module's "choose the architecture" and "quantize" questions);
* other runtimes (ONNX Runtime, OpenVINO; torch.compile on LeNet) beside them, on ResNet-50,
  swin_t and LeNet, so the report can mark each model's fastest state across runtimes;
* channel pruning on ResNet-50 (a smaller dense model, really faster), then int8 on top;
* unstructured pruning on LeNet (no speedup expected: dense kernels still multiply zeros);
* CSR on a 1024x1024 Linear (pays off only at high sparsity).

Compile cost sets the defaults. Inductor needs minutes per model and batch size on a 2-core
machine with a cold cache, so transformers get no inductor-compiled state (int8-static,
int8-dynamic, compile) unless --is-all-int8; under --benchmark-disable (the CI smoke run)
nothing is compiled.
"""

from __future__ import annotations

from benchmarks._harness import lenet_subject, linear_subject
from inference_scale.measure._suite_test import test_state
from inference_scale.measure.suite import Grid
from inference_scale.slugs import BASELINE
from inference_scale.states import list_states
from inference_scale.states.compound import Compound
from inference_scale.states.int8 import Int8Static, Int8StaticFX
from inference_scale.states.onnxrt import OrtInt8
from inference_scale.states.onnxrt_dynamic import OrtInt8Dynamic
from inference_scale.states.openvino_rt import OvInt8
from inference_scale.states.peers import PeerState
from inference_scale.states.precision import ChannelsLast
from inference_scale.states.pruning import CSR, PruneChannels, PruneL1, PruneL1Masked
from inference_scale.subjects.models import pick_architectures

__all__ = ["IS_GRIDS", "IS_SUBJECTS", "test_state"]

# Every registered precision and int8 state, read from the registry: a new one joins the
# architecture grid without an edit here (and skips with its reason where it cannot run).
# FX int8, the older path kept for comparison, runs on ResNet-50 only.
ARCH_STATES = tuple(
    c.example().slug for c in list_states() if c.family in ("precision", "quantize") and c is not Int8StaticFX
)
# Every other runtime (torch.compile, ONNX Runtime, OpenVINO), from the registry.
RUNTIMES = tuple(c.example().slug for c in list_states() if c.family == "runtime")
# Other runtimes' states for ResNet-50: all but ONNX Runtime's dynamic int8, which runs each
# convolution as ConvInteger and was 3.6x slower than fp32 there (247 ms against 69 ms at b1,
# 2026-12-02, Intel Xeon VNNI host): it answers nothing for a CNN and cost the main job about
# 30 s of tail rounds and memory probe. It stays on LeNet and MiniLM (RUNTIMES, TEXT_STATES).
PEERS = tuple(c.example().slug for c in list_states() if issubclass(c, PeerState) and c is not OrtInt8Dynamic)
PEER_INT8 = (OrtInt8().slug, OvInt8().slug)
PRUNE_THEN_INT8 = Compound(parts=(PruneChannels(pct=50), Int8Static())).slug
# A real pretrained text transformer (all-MiniLM-L6-v2, sequence 128) in every precision, int8
# and runtime state of the registry but the image-only layout (channels-last) and FX int8.
# States that compile skip it with their reason unless --is-all-int8 (minutes of inductor).
TEXT_STATES = tuple(s for s in (*ARCH_STATES, *RUNTIMES) if s != ChannelsLast().slug)

IS_SUBJECTS = {"lenet": lenet_subject, "linear-1024": linear_subject}
# The main job must stay within 15 min on 2 cores, so each grid holds what answers its
# question: batch 8 for ResNet-50 only (EfficientNet-V2-S at b8 alone took ~3 min: 3.3 s per
# fp32 call, a minute of int8 compile); other runtimes' fp32 at b1, their int8 at b1 and b8;
# MiniLM at b1 in every state that runs it, and at b8 in all but ONNX Runtime's static int8
# (21 s a batch size, 2026-12-07; the dynamic int8 a transformer takes answers b8). swin_t's
# other runtimes at b1 were cut to make room for MiniLM (exporting and quantizing swin_t takes
# 30-60 s per state): `inference-scale bench swin_t --states fp32,ort-int8,ov-fp32,ov-int8`
# runs them.
# Those big-model grids stay out of the smoke run (smoke=False): CI covers every runtime
# state on LeNet, and MiniLM's inputs and quality through one int8 state. The pruning grids
# name their states through the registry's classes; each grid's fp32 baseline is added by
# make_cases (first, once per model and batch).
IS_GRIDS = [
    Grid((*pick_architectures(), "lenet"), ARCH_STATES, (1,)),
    Grid(("resnet50",), ARCH_STATES, (8,)),
    Grid(("resnet50",), (Int8StaticFX().slug,), (1, 8)),
    Grid(("resnet50",), PEERS, (1,), smoke=False),
    Grid(("resnet50",), PEER_INT8, (8,), smoke=False),
    Grid(("minilm-l6",), TEXT_STATES, (1,), smoke=False),
    Grid(("minilm-l6",), tuple(s for s in TEXT_STATES if s != OrtInt8().slug), (8,), smoke=False),
    Grid(("minilm-l6",), (OrtInt8().slug,), (1,)),
    Grid(("lenet",), RUNTIMES, (1,)),
    Grid(("resnet50",), tuple(PruneChannels(pct=p).slug for p in (30, 50)), (1, 8)),
    Grid(("resnet50",), (PRUNE_THEN_INT8,), (1,), smoke=False),
    Grid(("lenet",), tuple(s(pct=p).slug for p in (20, 50, 90) for s in (PruneL1Masked, PruneL1)), (100,)),
    Grid(("linear-1024",), tuple(CSR(pct=p).slug for p in (90, 95, 99)), (1, 32)),
    # Memory and cold start (a fresh process per case) and tail rounds (p90, p99) for each
    # technique on ResNet-50 at batch 1: fp32, each int8 (torch, ONNX Runtime, OpenVINO), each
    # runtime's fp32, and channel pruning alone and with int8; tail rounds only for LeNet's.
    # Left out, each a probe of 7-14 s (2026-12-07, AMD EPYC VNNI host): channels-last and bf16
    # (the same weights in memory as fp32: 328 MB each on 2026-12-06), FX int8 (the older path)
    # and 30% pruning (50% answers it). A LeNet probe read 292-324 MB whatever the state, most of
    # it the digits dataset the child loads, and cost 8-19 s each (2026-12-04). `inference-scale
    # bench MODEL --memory --tail` takes any of them. These grids add no case: they mark cases
    # the grids above already hold, so the run order is theirs.
    Grid(
        ("resnet50",),
        (BASELINE, Int8Static().slug, *PEERS, PruneChannels(pct=50).slug, PRUNE_THEN_INT8),
        (1,),
        smoke=False,
        memory=True,
        tail=True,
    ),
    Grid(("lenet",), (*ARCH_STATES, *RUNTIMES), (1,), smoke=False, tail=True),
]
