"""``inference-scale serve``: the highest Poisson query rate each state sustains under a p99
budget, measured by a real load test and simulated from its service times per batch size
(:mod:`inference_scale.serving`); with ``--qps``, the replicas and batching policy that serve it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inference_scale.cli.args import add_parser, cli_flagged
from inference_scale.defaults import DEFAULTS
from inference_scale.options import MODEL_FLAGS, add_flags

__all__ = ["add", "run"]

DRIFT = 0.10  # a load test's median batch this far from the benchmark's is named on the console

SERVE_EXAMPLE = """\
example:
  inference-scale serve resnet50 --states fp32,int8-static,ov-int8 --p99-ms 100 --json serve.json --plot plots
  inference-scale advise serve.json --qps 200 --p99-ms 100

Each state is prepared at batch 1, 2, 4, ... and --max-batch (a partial batch runs padded to
the next prepared size), timed by the suite's runner (pytest-benchmark JSON beside --json, as
NAME.bench.json), then load-tested: LoadGen's search (double the rate until p99 fails, then
bisect), each probe at least 662 queries and --min-seconds long, and at most
--max-probe-seconds."""


def run(args: argparse.Namespace) -> int:
    from inference_scale.measure.plan import PlanError
    from inference_scale.serving import serve
    from inference_scale.serving.search import check_words, policy_words

    try:
        result = serve(
            args.model, states=args.states, p99_ms=args.p99_ms, max_batch=args.max_batch,
            max_delay_ms=args.max_delay_ms, qps=args.qps, json_out=args.json, plot_dir=args.plot,
            n_threads=args.threads, seed=args.seed, min_duration_s=args.min_seconds,
            max_probe_s=args.max_probe_seconds, example=args.example, input_shape=args.input_shape,
            seq_len=args.seq_len, eval=args.eval, calibration=args.calibration,
        )  # fmt: skip
    except PlanError as exc:  # led by serve's flag for the option, as bench's errors are
        raise PlanError(cli_flagged(exc)) from None
    status = 0
    print(
        f"{result['model']}: highest rate with p99 <= {result['p99_ms']:g} ms ({result['host']}, "
          f"{result['threads']} thread(s), {policy_words(result['policy'])})"
    )  # fmt: skip
    for slug, entry in result["states"].items():
        if entry["verdict"]:
            print(f"  {slug}: {entry['verdict']}")
            status = 1
            continue
        check = entry["check"]
        sim = entry["simulated_highest_qps"]
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.3f}"
        epochs = entry.get("simulated_highest_qps_before_after") or []  # absent from older records
        band = "; ".join(f"{q or 0:.1f} from the times {when}" for q, when in zip(epochs, ("before the load test",
                         "after"), strict=False))  # fmt: skip
        chosen = f"max batch {entry['policy']['max_batch']}: " if result["policy"].get("max_batch_chosen") else ""
        print(f"  {slug}: {chosen}measured {entry['measured_highest_qps']:.1f} q/s, simulated {sim or 0:.1f} q/s "
              f"({band or 'one set of times'}), simulated/measured {ratio} (steady state "
              f"{entry['simulated_steady_qps'] or 0:.1f} q/s); at "
              f"{check['offered_qps']:.1f} q/s (70%) p99 measured {_ms(check['measured_p99_ms'])}, simulated "
              f"{_ms(check['simulated_p99_ms'])} ({check_words(check)})")  # fmt: skip
        if "steady" in check and not check["steady"]:
            p99s = ", ".join(_ms(t["measured_p99_ms"]) for t in check["trials"])
            print(f"    note: the probes at 70% never settled (p99 {p99s}): the host's speed moved while they "
                  "ran, and the measured p99 there carries that spread")  # fmt: skip
        moved = [f"{key} {r:.2f}x" for key, r in entry["service_drift"].items() if abs(r - 1.0) > DRIFT]
        if moved:
            print(f"    note: in the load test, batches took {', '.join(moved)} their benchmark's time, which is "
                  "what the simulator draws (the host's speed moved, or so did what ran before them)")  # fmt: skip
        for plan in entry.get("capacity", [])[:1]:
            print(f"    {result['qps']:g} q/s: {plan['replicas']} replica(s), {plan['cores']} core(s) with max batch "
                  f"{plan['max_batch']}, max delay {plan['max_delay_ms']:g} ms")  # fmt: skip
    if args.json:
        print(f"wrote {args.json}", file=sys.stderr)
    return status


def _ms(value: float | None) -> str:
    """A latency for the console: "-" where the probe did not finish (no p99)."""
    return "-" if value is None else f"{value:.2f} ms"


def _parse_float(text: str) -> float:
    """A float parsed for the one-line checks in :mod:`.serving` (NaN and <= 0 named there)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add(sub: Any) -> None:
    p = add_parser(
        sub, "serve", help="highest query rate under a p99 budget per state: load test and simulation",
        description="Poisson arrivals, a dynamic batcher and one worker, per state: the highest rate whose p99 "
        "meets --p99-ms (MLPerf LoadGen's Server-scenario search), the simulator's prediction from the service "
        "times per batch size, and with --qps the replicas and batching policy needing the fewest cores.",
        epilog=SERVE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="a registry name, hf:DIR, timm:NAME or module:factory")
    p.add_argument("--states", required=True, metavar="SLUG[,SLUG]", help="states to serve, e.g. fp32,int8-static")
    add_flags(p, *MODEL_FLAGS)  # as bench takes them
    p.add_argument("--p99-ms", type=_parse_float, required=True, metavar="X", help="p99 latency budget in ms")
    p.add_argument("--max-batch", type=int, metavar="B",
                   help="largest batch the batcher forms (default: per state, whichever of the prepared sizes "
                   f"1, 2, 4, ... up to {DEFAULTS['serve_max_batch']} the simulator gives the highest rate under "
                   "the budget)")  # fmt: skip
    p.add_argument("--max-delay-ms", type=_parse_float, default=DEFAULTS["serve_max_delay_ms"], metavar="D",
                   help="longest a request waits for a batch to fill "
                   f"(default {DEFAULTS['serve_max_delay_ms']:g})")  # fmt: skip
    p.add_argument("--qps", type=_parse_float, metavar="N", help="also plan replicas to serve N queries/s")
    add_flags(p, "threads")  # per replica
    p.add_argument("--seed", type=int, default=0, help="seed of the arrivals and the simulator (default 0)")
    p.add_argument("--min-seconds", type=_parse_float, default=1.0, metavar="S",
                   help="shortest probe in seconds (default 1; every probe also runs >= 662 queries)")  # fmt: skip
    p.add_argument("--max-probe-seconds", type=_parse_float, default=DEFAULTS["max_probe_s"], metavar="S",
                   help=f"longest probe in seconds (default {DEFAULTS['max_probe_s']:g}): rates too slow for 662 "
                   "queries in S are not load-tested")  # fmt: skip
    p.add_argument("--json", metavar="OUT", help="write the serve record here (service times in OUT.bench.json)")
    p.add_argument("--plot", metavar="DIR", help="draw p50/p99 against offered load into DIR/serve_MODEL.png")
    p.set_defaults(func=run)
