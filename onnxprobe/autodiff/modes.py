"""The backward modes, the one place they are named (no graph library imported here: the command
line's parsers list them)."""

from __future__ import annotations

from enum import StrEnum


class BackMode(StrEnum):
    """How the backward pass treats the ReLU family: the modes' names, spelled once (each is the
    word the library and the command line take; a StrEnum, so it equals that word)."""

    GRADIENT = "gradient"  # the exact gradient
    DECONV = "deconv"  # Zeiler-Fergus deconvnet: relu(G)
    GUIDED = "guided"  # guided backprop: relu(G) * (X > 0)

    @property
    def description(self) -> str:
        return {"gradient": "exact", "deconv": "Zeiler-Fergus", "guided": "guided backprop"}[self.value]

    @property
    def file_word(self) -> str:
        """The word in file names and manifests (the toolbox called the gradient's map "backprop")."""
        return "backprop" if self is BackMode.GRADIENT else self.value


MODES = tuple(mode.value for mode in BackMode)
