"""Verdicts: reading saved runs, comparing them, A/B and history. Importing this wing loads no torch."""
