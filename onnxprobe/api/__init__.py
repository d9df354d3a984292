"""The notebook API's implementation; import it as `onnxprobe` (`onnxprobe/__init__.py` re-exports
these names lazily, so `import onnxprobe` stays cheap).

- `model.py`: `load`, `Model` (its methods compose the library: ProbeModel, attribution,
  optimize, maxact, atlas, the viewer).
- `objectives.py`: objectives written before there is a model (Lucent's algebra), bound by
  `Model.render`.
- `results.py`: what the methods return, each shown by Jupyter (`_repr_png_` / `_repr_html_`) with
  `.numpy()` and `.save(path)`.
- `inputs.py`: images as paths, PIL images or arrays -> the model's input.
- `params.py`: what a front end offers and checks before the work (the choices: methods,
  presets, filters, ...; the readers of text: positions, shapes, unit ranges, sizes).
- `demo.py`: the demo report (`Model.demo`, what `onnxprobe demo` writes).

The command line (`onnxprobe.cli`) is a client of this package and of nothing else of the library
(pyproject.toml's "one path" contract, its few exceptions named there).
"""
