"""Errors of a component's file that say where: the `defs.yaml`, the line, and the key path.

Dagster's own messages quote the lines around the value; these quote the line itself, except for a
credential's line, which is never echoed (a secret written there by mistake must not reach a log or
the UI).
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import dagster as dg
from dagster.components.resolved.errors import ResolutionException

KeyPart = Union[str, int]


@dataclass(frozen=True)
class Place:
    """Where a key of the file is (or its closest ancestor that is written, for a missing key)."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def place_of(context: dg.ResolutionContext, path: Sequence[KeyPart] = ()) -> Optional[Place]:
    tree = context.source_position_tree
    if tree is None:
        return None
    position, _ = tree.lookup_closest_and_path([*context.path, *path], trace=None)
    text = ""
    if position.filename != "<string>":
        try:
            with open(position.filename, encoding="utf-8") as file:
                text = file.read().splitlines()[position.start.line - 1].strip()
        except (OSError, IndexError):
            text = ""
    return Place(position.filename, position.start.line, text)


def key_path(context: dg.ResolutionContext, path: Sequence[KeyPart] = ()) -> str:
    parts = [*context.path, *path]
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")


def located(context: dg.ResolutionContext, message: str, path: Sequence[KeyPart] = (),
            secret: bool = False) -> ResolutionException:
    """`<file>:<line>: <key path>: <message>`, then the line as written unless `secret`."""
    place = place_of(context, path)
    where = f"{place}: " if place else ""
    shown = f"\n    {place.line} | {place.text}" if place and place.text and not secret else ""
    return ResolutionException(f"{where}{key_path(context, path)}: {message}{shown}")
