"""A table of per-op rules keyed by (domain, op_type): the backward rules (autodiff/registry.py) and
the geometry rules (graph/geometry/registry.py) are two of them. The default domain is spelled "",
whether a model writes "" or "ai.onnx"; a rule names its op "Op" or "domain::Op"."""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")
DEFAULT_DOMAINS = ("", "ai.onnx")


def op_key(domain: str, op_type: str) -> tuple[str, str]:
    return ("" if domain in DEFAULT_DOMAINS else domain, op_type)


class OpTable(dict[tuple[str, str], V], Generic[V]):
    """(domain, op_type) -> rule; ``what`` names the kind of rule in the duplicate error."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def add(self, op: str, rule: V) -> None:
        domain, _, op_type = op.rpartition("::")
        key = op_key(domain, op_type)
        if key in self:
            raise RuntimeError(f"duplicate {self.what} for {key}")
        self[key] = rule

    def lookup(self, domain: str, op_type: str) -> V | None:
        return self.get(op_key(domain, op_type))
