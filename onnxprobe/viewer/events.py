"""A minimal event emitter (napari style): the Qt-free model emits, thin widgets subscribe."""

from __future__ import annotations

from collections.abc import Callable


class Emitter:
    """Calls every connected callback with the event's name ("selection", "forward", ...)."""

    def __init__(self):
        self._callbacks: list[Callable[[str], None]] = []

    def connect(self, callback: Callable[[str], None]) -> Callable[[str], None]:
        self._callbacks.append(callback)
        return callback

    def emit(self, name: str) -> None:
        for callback in list(self._callbacks):
            callback(name)
