"""A tiny "model" for the sweep examples: logistic regression in pure Python.

Two Gaussian blobs of points make a train and a validation set (fixed by `seed`); `fit`
runs full-batch gradient descent with a learning rate and reports validation accuracy and
loss, so a sweep over learning rates has a best run. No dependencies, a few milliseconds.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

Point = tuple[float, float, int]


@dataclass(frozen=True)
class Model:
    w1: float
    w2: float
    bias: float
    lr: float
    epochs: int
    val_acc: float
    val_loss: float

    def save(self, folder: str | Path) -> Path:
        """Write the model as JSON into `folder`; returns the file."""
        path = Path(folder) / "model.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), sort_keys=True, indent=2))
        return path


def points(n: int, seed: int) -> list[Point]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        cx, cy = (3.0, 2.0) if label else (1.0, 0.5)
        out.append((rng.gauss(cx, 0.8), rng.gauss(cy, 0.8), label))
    return out


def fit(lr: float, *, epochs: int = 25, seed: int = 0) -> Model:
    """Train on 300 points, validate on 200 others."""
    train, val = points(300, seed), points(200, seed + 1)
    w1 = w2 = b = 0.0
    for _ in range(epochs):
        g1 = g2 = gb = 0.0
        for x, y, label in train:
            err = _sigmoid(w1 * x + w2 * y + b) - label
            g1, g2, gb = g1 + err * x, g2 + err * y, gb + err
        n = len(train)
        w1, w2, b = w1 - lr * g1 / n, w2 - lr * g2 / n, b - lr * gb / n
    right, loss = 0, 0.0
    for x, y, label in val:
        p = min(max(_sigmoid(w1 * x + w2 * y + b), 1e-9), 1 - 1e-9)
        right += (p >= 0.5) == bool(label)
        loss -= math.log(p) if label else math.log(1 - p)
    return Model(w1, w2, b, lr, epochs, round(right / len(val), 4), round(loss / len(val), 4))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
