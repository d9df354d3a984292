"""Judge saved class visualizations again: folders of CLASS.png (bench_quality.py --save,
sweep_lucid.py --save) through both ImageNet judges; one table row per folder.

    python bench/rejudge.py FOLDER [FOLDER ...]
"""
import sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_quality import judged, judged_cells, load_judges  # noqa
from onnxprobe.preprocess import read_image  # noqa

judges = load_judges()
print(f"| folder | images | {' | '.join(judges)} (top-1 / top-5 / median rank) |")
print("|---|---|" + "---|" * len(judges))
for folder in sys.argv[1:]:
    files = sorted(Path(folder).glob("*.png"))
    classes = [int(f.stem) for f in files]
    images = [read_image(str(f))[:, :, ::-1] for f in files]
    print(f"| {Path(folder).name} | {len(files)} | {judged_cells(judged(judges, images, classes))} |", flush=True)
