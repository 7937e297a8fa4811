"""The ``inference-scale`` command line: one module per command (asv's ``commands/`` layout),
each with ``add(subparsers)`` and ``run(args) -> int``, callable from Python. :mod:`.main`
assembles them; shared flags come from :mod:`inference_scale.options`. Importing a command
module loads no torch, so ``--help`` is quick."""
