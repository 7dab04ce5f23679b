"""Errors in what a person gave the suite, kept apart from bugs.

The command line prints a `UserError` as one line, `error: <problem> (<file or field>)`, and lets
every other exception show its traceback, so a bug is never dressed up as bad input. Each
subclass also derives from the built-in error it replaces, so callers that catch ValueError,
KeyError or FileNotFoundError keep working.
"""

from __future__ import annotations

import json
from pathlib import Path


class UserError(Exception):
    """Bad input: a problem the user can fix, and where it is (a file or a config field)."""

    def __init__(self, problem: str, where: str | Path | None = None):
        super().__init__(problem)
        self.problem, self.where = problem, str(where) if where is not None else None

    def __str__(self) -> str:
        if self.where and self.where not in self.problem:
            return f"{self.problem} ({self.where})"
        return self.problem


class BadValue(UserError, ValueError):
    """A setting, name or number that is not valid."""


class UnknownKey(UserError, KeyError):
    """A config key that does not exist."""


class MissingFile(UserError, FileNotFoundError):
    """A file or directory the user named that is not there."""


class BadFile(UserError, ValueError):
    """A file that is there but cannot be read as what it should be (truncated, wrong format)."""


def read_json(path: str | Path, what: str = "JSON file"):
    """A JSON file the user supplied or the suite wrote earlier; a missing or malformed one is
    a user error naming the file (nothing is rewritten)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingFile(f"{what} does not exist", path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadFile(f"cannot read {what}: {err}", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadFile(f"{what} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})",
                      path) from None


def read_safetensors(path: str | Path) -> dict:
    """Every tensor of a safetensors file as numpy arrays; a truncated file or one in another
    format is a user error naming the file."""
    import safetensors.numpy
    from safetensors import SafetensorError

    try:
        return safetensors.numpy.load_file(path)
    except SafetensorError as err:
        raise BadFile(f"not a readable safetensors file, truncated or in another format ({err})",
                      path) from None
