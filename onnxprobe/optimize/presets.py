"""Named hyperparameter sets: the four of the paper (Yosinski et al. 2015, set 3 the default) and
`lucid`, the modern parameterization's defaults (Olah et al. 2017 / Lucid)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from onnxprobe.errors import UsageError


@dataclass(frozen=True)
class Preset:
    """One hyperparameter set. The seed's values are in 0..255 pixel units (see the package docstring)."""

    name: str
    method: str  # "seed": pixel-space gradient ascent with the four priors; "lucid": Adam + transforms
    steps: int
    lr_policy: str = "constant"  # "constant" | "progress" (seed) | "adam" (lucid)
    lr: float = 100.0  # constant lr (seed), Adam step size (lucid)
    max_lr: float = 0.0  # progress policy: lr = min(max_lr, desired_progress / ||g||^2)
    desired_progress: float = 0.0
    decay: float = 0.0  # L2 decay: x *= (1 - decay)
    blur_radius: float = 0.0  # Gaussian sigma in pixels
    blur_every: int = 0  # blur on steps where step % blur_every == 0
    norm_pct: float = 0.0  # zero pixels whose channel norm is below this percentile
    contrib_pct: float = 0.0  # zero pixels whose |sum_c g * -x| is below this percentile
    init_sd: float = 10.0  # seed: N(0, sd) around the mean pixel; lucid: sd of the parameters
    param: str = "pixel"  # default parameterization: "pixel" or "fft"
    # lucid transformation robustness, in pixels at 128 px (scaled down for smaller inputs)
    pad: int = 0
    jitter: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    max_rotate: float = 0.0
    decorrelate: bool = False

    def with_steps(self, steps: int | None) -> "Preset":
        if steps is None:
            return self
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        return replace(self, steps=int(steps))

    def to_json(self) -> dict:
        data = asdict(self)
        data["jitter"] = list(self.jitter)
        data["scales"] = list(self.scales)
        return data


PRESETS: dict[str, Preset] = {
    "set1": Preset("set1", "seed", steps=500, lr_policy="progress", max_lr=100.0, desired_progress=2.0,
                   decay=0.0, blur_radius=0.5, blur_every=4, norm_pct=50.0),
    "set2": Preset("set2", "seed", steps=750, lr_policy="constant", lr=100.0, decay=0.3, norm_pct=20.0),
    "set3": Preset("set3", "seed", steps=1000, lr_policy="constant", lr=100.0, decay=0.0001, blur_radius=1.0,
                   blur_every=4),
    "set4": Preset("set4", "seed", steps=1000, lr_policy="progress", max_lr=1e8, desired_progress=2.0,
                   blur_radius=0.5, blur_every=4, contrib_pct=90.0),
    "lucid": Preset("lucid", "lucid", steps=512, lr_policy="adam", lr=0.05, init_sd=0.01, param="fft", pad=12,
                    jitter=(8, 4), scales=tuple(round(0.9 + 0.02 * i, 2) for i in range(11)), max_rotate=10.0,
                    decorrelate=True),
}
DEFAULT_PRESET = "set3"
PARAMS = ("pixel", "fft")


def get_preset(preset: str | Preset, steps: int | None = None) -> Preset:
    if isinstance(preset, Preset):
        return preset.with_steps(steps)
    if preset not in PRESETS:
        raise UsageError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    return PRESETS[preset].with_steps(steps)


def resolve_param(preset: Preset, param: str | None) -> str:
    """The parameterization to use: the preset's own unless given; the seed's sets are pixel-only."""
    if param is None:
        return preset.param
    if param not in PARAMS:
        raise UsageError(f"unknown parameterization '{param}' (known: {', '.join(PARAMS)})")
    if preset.method == "seed" and param != "pixel":
        raise UsageError(f"preset '{preset.name}' is the paper's pixel-space method; use --preset lucid with --param {param}")
    return param
