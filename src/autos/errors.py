"""User-facing errors. Stages turn these into a clear message and a non-zero exit status."""

from __future__ import annotations


class AutosError(Exception):
    """Base class for errors caused by user input (config, data), not by bugs."""


class ConfigError(AutosError):
    """One or more config problems; every problem is listed with its dotted path."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


class DataError(AutosError):
    """Missing, corrupt or unsafe data."""


class UnsupportedModelError(AutosError):
    """A method cannot run on this model (an op it needs torch cannot compute): the message says what to use."""


class TrainingDiverged(AutosError):
    """A training loss became non-finite: the run failed, and its numbers must not enter any result."""
