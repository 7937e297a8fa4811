"""The one generic benchmark: a model in a state at a batch size (see :mod:`.plugin`).

The plugin runs this file on ``--is-model`` models when no test path is given; a suite of
one's own imports :func:`test_state` and sets ``IS_GRIDS`` (and ``IS_SUBJECTS``) beside it.
"""

from __future__ import annotations

from typing import Any

from inference_scale.measure.suite import Case, Options, Session, run_case

__all__ = ["test_state"]


def test_state(benchmark: Any, is_case: Case, is_session: Session, is_options: Options) -> None:
    run_case(benchmark, is_session, is_case, is_options)
