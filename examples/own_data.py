"""Your own data in vsml: write a tiny .npz, .csv and image folder, then draw episodes from each.

    python examples/own_data.py

Any path works wherever a dataset name does: ``vsml.data.load(path, split)``,
``DatasetSpec(name=path)``, ``vsml evaluate -d path`` (see docs/data.md, "Your own data").
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from vsml.data import DatasetSpec, EpisodeSampler, SamplerConfig, load


def write_examples(root: Path) -> dict[str, str]:
    """Three small datasets of 3 classes each; returns {kind: path}."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)  # 60 examples, 20 per class
    # .npz: 8x8 grayscale images whose brightness depends on the class
    images = (rng.uniform(0, 80, (60, 8, 8)) + 60 * labels[:, None, None]).astype(np.uint8)
    np.savez(root / "blobs.npz", images=images, labels=labels)
    # .csv: 4 numeric features in different units and a string label column
    centres = np.array([[0, 0, 10, 100], [2, 1, 12, 50], [4, 2, 8, 0]], float)
    with open(root / "flowers.csv", "w") as f:
        f.write("length,width,height,weight,species\n")
        for y in labels:
            x = centres[y] + rng.normal(0, [1, 0.5, 1, 20])
            f.write(",".join(f"{v:.3f}" for v in x) + f",{['iris', 'lily', 'rose'][y]}\n")
    # folder: one sub-folder of PNGs per class
    for y, name in enumerate(["circle", "cross", "square"]):
        (root / "shapes" / name).mkdir(parents=True)
        for i in range(20):
            img = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            if name == "circle":
                yy, xx = np.mgrid[:12, :12]
                img[(yy - 6) ** 2 + (xx - 6) ** 2 < 16] = 255
            elif name == "cross":
                img[5:7, :] = img[:, 5:7] = 255
            else:
                img[3:9, 3:9] = 255
            Image.fromarray(img).save(root / "shapes" / name / f"{i:02d}.png")
    return {"npz": str(root / "blobs.npz"), "csv": str(root / "flowers.csv"), "folder": str(root / "shapes")}


def main() -> dict[str, tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_examples(Path(tmp))
        shapes = {}
        for kind, path in paths.items():
            train, test = load(path, "train"), load(path, "test")  # a fixed, stratified 80/20 partition
            print(
                f"{kind:6s} {path}: train {train.images.shape}, test {test.images.shape}, "
                f"classes {train.num_classes} {list(train.class_names) or ''}"
            )
            config = SamplerConfig(
                datasets=(DatasetSpec(path, "train"),),
                steps=50,
                batch_size=1,
                projection="episode" if kind == "csv" else "none",
                flatten=True,
            )
            sampler = EpisodeSampler(config)
            xs, ys = sampler.sample(jax.random.PRNGKey(0), 4)  # 4 episodes of 50 steps
            print(
                f"       episodes: xs {tuple(xs.shape)}, ys {tuple(ys.shape)}, labels "
                f"{sorted(set(np.asarray(ys).ravel().tolist()))}, "
                f"input mean {float(xs.mean()):+.2f} std {float(xs.std()):.2f}"
            )
            shapes[kind] = (tuple(xs.shape), tuple(ys.shape))
        return shapes


if __name__ == "__main__":
    main()
