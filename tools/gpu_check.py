"""Print the suite's medians beside their CUDA-event medians (recorded in the same process by
``--is-cuda-events``) for one batch size; exit 1 when any differs by more than the tolerance."""

from __future__ import annotations

import argparse
import sys

from inference_scale.verdicts.runs import load_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="pytest-benchmark JSON of a CUDA run with --is-cuda-events")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    run = load_run(args.run)
    rows, worst = [], 0.0
    for bench in run.benchmarks:
        rec, events = bench.record, bench.extra_info.get("cuda_event_median_s")
        if rec is None or rec["batch_size"] != args.batch or not isinstance(events, (int, float)):
            continue
        ratio = bench.median / events
        worst = max(worst, abs(ratio - 1))
        rows.append((rec["model"], rec["state"], bench.median * 1e3, events * 1e3, ratio))
    if not rows:
        print(f"no benchmark at batch {args.batch} carries cuda_event_median_s", file=sys.stderr)
        return 2
    print(f"{'model':<20} {'state':<22} {'suite ms':>10} {'events ms':>10} {'ratio':>7}")
    for model, state, med, ev, ratio in rows:
        flag = "" if abs(ratio - 1) <= args.tolerance else "  <-- off"
        print(f"{model:<20} {state:<22} {med:>10.3f} {ev:>10.3f} {ratio:>7.3f}{flag}")
    print(f"worst |suite/events - 1| = {worst:.1%} (bar {args.tolerance:.0%})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
