"""The live viewer: the Deep Visualization Toolbox for any ONNX CNN.

Everything in this package except `viewer.qt` is Qt-free (import-linter enforces it): `state` is the
model (what the user selected, what was computed, and what each pane shows) and emits events;
`keys` is the key table; `passes` computes the panes; `controller` wires the frame grabber and the
forward/backward workers off the GUI thread; `viewer.qt` holds widgets that draw what `state` says.
"""
