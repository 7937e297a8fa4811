"""Measuring: the suite and its pytest plugin, the plan, the record, the machine and its peaks."""
