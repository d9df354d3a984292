"""The demo's class pictures: are they recognizable within the demo's minute? (issue 21 item 6)

    python bench/bench_demo_classes.py [--configs lucid:128:4,lucid:256:4,lucid:256:3] [--seeds 0,1]

The classes are the demo's own: the first distinct top-1 classes of the bundled network on its
sample photos (models/imagenet/samples), rendered as the demo renders them (objective logit, one
batch of all classes, seed S), and judged on the display image by bench_quality's two independent
ImageNet classifiers (SqueezeNet 1.1 and EfficientNet-Lite0, the stronger): per configuration
preset:steps:classes, each class's rank by each judge (1 = top-1), top-1 / top-5 over the classes,
and the process CPU seconds of the rendering (the demo's own CPU time is this plus about 5 s).
Not a timed test: CPU seconds are the process's, so other work on the machine changes them less
than wall time.

Run 1 (2026-12-06, 08:10-08:35 UTC, the shared 2-core machine at load average 13-15, seed 0): the
demo's classes are bobsled, Egyptian cat, espresso, obelisk. Ranks SqueezeNet | EfficientNet-Lite0:
  | preset | steps | classes | CPU s | SqueezeNet ranks | EfficientNet-Lite0 ranks | top-1 / top-5 (strong judge) |
  |---|---|---|---|---|---|---|
  | lucid | 128 | 4 | 36 | 544, 11, 135, 67 | 1, 2, 6, 1 | 50 % / 75 % |
  | lucid | 192 | 4 | 51 | 634, 9, 147, 60 | 1, 2, 6, 1 | 50 % / 75 % |
  | lucid | 256 | 4 | 68 | 522, 80, 127, 35 | 1, 2, 6, 1 | 50 % / 75 % |
  (lucid-fast is lucid at 256 steps.) The stronger judge ranks the four classes the same from 128
  to 256 steps: what makes bobsled and Egyptian cat hard to see is not the step count (to the eye
  256 steps is sharper texture, not a clearer object), and 256 steps would put the demo past its
  minute of CPU. (Run 2 made the demo change its preset.)

Run 2 (2026-12-06, 09:42 UTC, load average 3-6, seed 0), the maco preset (issue 26):
  | preset | steps | classes | CPU s | SqueezeNet ranks | EfficientNet-Lite0 ranks | top-1 / top-5 (SqueezeNet; Lite0) |
  |---|---|---|---|---|---|---|
  | maco | 64 | 4 | 72 | 2, 2, 2, 10 | 1, 2, 4, 1 | 0 / 75 %; 50 / 100 % |
  | maco | 48 | 4 | 57 | 2, 4, 10, 1 | 1, 22, 6, 2 | 25 / 75 %; 25 / 50 % |
  SqueezeNet, the judge of another family (EfficientNet-Lite0 is MobileNetV2's kin: inverted
  residual blocks), names maco's 64-step pictures where it named none of lucid's; to the eye they
  show the objects (bobsleds, cat faces, a cup, a stone tower). The demo now draws them (maco, 64
  steps), at twice lucid-128's CPU time: about a minute of wall time on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_quality import MODEL, judge_probs, load_judges  # noqa: E402
from onnxprobe.model import ProbeModel, top_predictions  # noqa: E402
from onnxprobe.optimize import RenderSettings, render_units  # noqa: E402
from onnxprobe.preprocess import read_image  # noqa: E402


def demo_classes(model: ProbeModel) -> list[int]:
    """The demo's classes: the first distinct top-1 of each sample photo, in the photos' order."""
    from onnxprobe.resources import sample_images

    seen: list[int] = []
    for path in sample_images(MODEL):
        x = model.preprocess(read_image(path))
        scores = model.activations(x, [model.class_output], with_outputs=False)[model.class_output][0]
        top = top_predictions(scores, model.spec.labels, 1)[0].cls
        if top not in seen:
            seen.append(top)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lucid:128:4,lucid-fast:256:4,lucid:192:4,lucid:256:3")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--save", help="folder for the judged images")
    args = parser.parse_args()
    model = ProbeModel.load(MODEL, device="cpu")
    judges = load_judges()
    classes = demo_classes(model)
    labels = model.spec.labels
    print(f"demo classes: {', '.join(f'{c} {labels[c]}' for c in classes)}")
    print(f"| preset | steps | classes | seed | CPU s | {' | '.join(f'{j} ranks' for j in judges)} | "
          f"{' | '.join(f'{j} top-1 / top-5' for j in judges)} |")
    print("|---|---|---|---|---|" + "---|" * (2 * len(judges)))
    for config in args.configs.split(","):
        preset, steps, count = config.split(":")
        chosen = classes[:int(count)]
        for seed in (int(s) for s in args.seeds.split(",")):
            began = time.process_time()
            settings = RenderSettings.resolve(preset, steps=int(steps), batch=len(chosen), seed=seed)
            results = render_units(model, None, chosen, settings, objective="logit")
            cpu = time.process_time() - began
            images = [r.images[0] for r in results]
            ranks, tops = [], []
            for judge in judges.values():
                probs = judge_probs(judge, images)
                r = [int((p > p[c]).sum()) + 1 for p, c in zip(probs, chosen)]
                ranks.append(", ".join(map(str, r)))
                tops.append(f"{np.mean(np.array(r) == 1):.0%} / {np.mean(np.array(r) <= 5):.0%}")
            print(f"| {preset} | {steps} | {len(chosen)} | {seed} | {cpu:.0f} | {' | '.join(ranks)} | {' | '.join(tops)} |",
                  flush=True)
            if args.save:
                from onnxprobe.fsutil import file_word
                from onnxprobe.render.images import write_png

                for c, image in zip(chosen, images):
                    write_png(Path(args.save) / f"{preset}-{steps}-s{seed}-class-{c}-{file_word(labels[c])}.png", image)


if __name__ == "__main__":
    main()
