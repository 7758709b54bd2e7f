"""Output paths of the commands, checked before any long work.

A command that writes files checks its paths first, so that a typo or a read-only location fails
in a second with a one-line error (exit code 2) instead of a traceback after the whole run. Only
the last component is created (an output directory), never missing parents.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer


def _writable_directory(directory: Path, option: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise typer.BadParameter(
            f"cannot write in {str(directory)!r}: {err.strerror}", param_hint=option
        ) from None


def _existing_parent(path: Path, option: str) -> Path:
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise typer.BadParameter(f"the directory {str(parent)!r} {what}", param_hint=option)
    return parent


def output_directory(path: Path, option: str = "--out") -> Path:
    """``path`` as a writable directory, created if missing (its parent must exist)."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{str(path)!r} is a file, not a directory", param_hint=option)
    if not path.exists():
        _existing_parent(path, option)
        try:
            path.mkdir()
        except OSError as err:
            raise typer.BadParameter(
                f"cannot create {str(path)!r}: {err.strerror}", param_hint=option
            ) from None
    _writable_directory(path, option)
    return path


def output_file(path: Path, option: str = "--out") -> Path:
    """``path`` as a file that can be written: its directory exists and is writable, and the
    path is not a directory (an existing file is overwritten later)."""
    if path.is_dir():
        raise typer.BadParameter(f"{str(path)!r} is a directory, not a file", param_hint=option)
    _writable_directory(_existing_parent(path, option), option)
    return path
