"""A group's commands, each built the first time it is looked up.

Building a command means importing its module and having Typer read every parameter of its
function: for all of imgen's commands that is a sixth of a one-shot run. A run names one
command, so only that one is built; help and completion, which list them all, build them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any


class LazyCommands(MutableMapping[str, Any]):
    """name -> Click command, in the order given; `makers` build the ones not built yet."""

    def __init__(self, makers: Mapping[str, Callable[[], Any]], built: Mapping[str, Any] | None = None) -> None:
        self._makers = dict(makers)
        self._built = dict(built or {})
        self._order = [*self._makers, *(name for name in self._built if name not in self._makers)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            maker = self._makers[name]  # an unknown name: KeyError, as a dict says it
            self._built[name] = maker()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self:
            self._order.append(name)
        self._makers.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._order.remove(name)
        self._makers.pop(name, None)
        self._built.pop(name, None)

    # Asking whether a name is a command must not build it (Mapping's would).
    def __contains__(self, name: object) -> bool:
        return name in self._makers or name in self._built

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)
