"""The notebook API's implementation; import it as `onnxprobe` (`onnxprobe/__init__.py` re-exports
these names lazily, so `import onnxprobe` stays cheap).

- `model.py`: `load`, `Model` (its methods compose the library: ProbeModel, attribution,
  optimize, maxact, atlas, the viewer).
- `objectives.py`: objectives written before there is a model (Lucent's algebra), bound by
  `Model.render`.
- `results.py`: what the methods return, each shown by Jupyter (`_repr_png_` / `_repr_html_`) with
  `.numpy()` and `.save(path)`.
- `inputs.py`: images as paths, PIL images or arrays -> the model's input.
"""
