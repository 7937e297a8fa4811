"""The slug grammar, without torch: saved runs are read through it by ``runs`` and ``report``.

A slug is lowercase and hyphenated (``fp32``, ``channels-last``, ``int8-static``,
``prune-channels-50``); a parametrized state writes its parameter as a number in its pattern
(``prune-l1-{pct}``). A compound state joins slugs with ``+`` and applies them left to right
(``prune-channels-50+int8-static``). Runs saved before the registry used other names: the one
alias table below maps them, so old runs still load in ``report`` and ``compare``.
"""

from __future__ import annotations

import re

__all__ = ["ALIASES", "BASELINE", "COMPOUND_SEP", "FAMILIES", "canonical_slug", "pattern_regex", "split_compound"]

COMPOUND_SEP = "+"
# A state's family, in display order: reports group and sort rows by it, read from the record.
FAMILIES: tuple[str, ...] = ("precision", "quantize", "prune", "distill", "runtime", "compound")
# The dense fp32 eager state every speedup, size ratio and agreement is measured against.
BASELINE = "fp32"

# Old name -> slug. ``{pct}`` stands for a number in both. The distillation roles became a model
# (teacher-cnn, student-cnn) in a state: the teacher and the CE-trained student are each fp32,
# the distilled student is ``kd``.
ALIASES: dict[str, str] = {
    "channels_last": "channels-last",
    "unstructured-{pct}": "prune-l1-{pct}",
    "unstructured-{pct}-masked": "prune-l1-{pct}-masked",
    "channels-{pct}": "prune-channels-{pct}",
    "teacher": "fp32",
    "student-ce": "fp32",
    "student-kd": "kd",
}

_PARAM = re.compile(r"\{(\w+)\}")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``prune-l1-{pct}`` -> a regex whose named groups are the pattern's integer parameters."""
    parts = _PARAM.split(pattern)
    # split() alternates literal text and parameter names
    body = "".join(re.escape(p) if i % 2 == 0 else rf"(?P<{p}>\d+)" for i, p in enumerate(parts))
    return re.compile(rf"^{body}$")


_ALIAS_RULES = [(pattern_regex(old), new) for old, new in ALIASES.items()]


def canonical_slug(slug: str) -> str:
    """The current slug for ``slug``: itself, or what the alias table maps an old name to.
    Each part of a compound is mapped on its own."""
    if COMPOUND_SEP in slug:
        return COMPOUND_SEP.join(canonical_slug(part) for part in slug.split(COMPOUND_SEP))
    for regex, new in _ALIAS_RULES:
        match = regex.match(slug)
        if match:
            return new.format(**match.groupdict())
    return slug


def split_compound(slug: str) -> list[str]:
    """The parts of a compound slug (one part for a plain slug)."""
    return slug.split(COMPOUND_SEP)
