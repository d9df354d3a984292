"""The live viewer: the Deep Visualization Toolbox for any ONNX CNN.

Everything in this package except `viewer.qt` is Qt-free (a test enforces it): `state` holds what
the user selected and what was computed and emits events; `controller` runs the frame grabber and
the forward/backward workers off the GUI thread; `viewer.qt` holds thin widgets that subscribe.
"""
