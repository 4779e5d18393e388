"""From a CSV file to online learning to a plot: the shipped `general` LA against scikit-learn's
SGDClassifier.partial_fit on the same stream, one row at a time, each row predicted before its
label is seen (online accuracy).

    python examples/csv_online.py your_data.csv [--label COLUMN] [--rows N] [--out curve.png]
    python examples/csv_online.py                # writes scikit-learn's wine table to wine.csv first

Any CSV that ``vsml.data`` reads works (numeric feature columns and one label column; see
docs/data.md, "Your own data"). The rows are streamed in a fixed random order (``--seed``);
both learners standardise every feature with running statistics over the rows seen so far, so
neither sees anything of the future (SGD's first row counts as wrong: it cannot predict before its
first ``partial_fit``; the LA guesses it). Numbers printed: online accuracy over the stream, and the
accuracy on the rows of the file's fixed 20 % test partition after the stream.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import vsml
from vsml.data import load


def write_wine(path: Path) -> Path:
    """scikit-learn's bundled wine table (178 rows, 13 features, 3 cultivars) as a CSV file."""
    from sklearn.datasets import load_wine

    data = load_wine()
    with open(path, "w") as f:
        f.write(",".join(data.feature_names) + ",cultivar\n")
        for row, label in zip(data.data, data.target):
            f.write(",".join(f"{v:g}" for v in row) + f",{data.target_names[label]}\n")
    return path


def stream(csv: str, rows: int | None = None, seed: int = 0) -> dict:
    """Online accuracy curves of `general` and SGDClassifier.partial_fit over the train rows of ``csv``."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    train, test = load(csv, "train"), load(csv, "test")  # the file's fixed, stratified 80/20 partition
    order = np.random.default_rng(seed).permutation(len(train.labels))[:rows]
    X, y = train.images[order].astype(np.float32), train.labels[order]
    classes = np.arange(train.num_classes)

    model = vsml.online("general", input_shape=X.shape[1:], num_classes=train.num_classes)  # standardises online
    correct_la = model.learn(X, y).argmax(1) == y  # each row predicted before its label is learned

    sgd, scaler = SGDClassifier(random_state=seed), StandardScaler()
    correct_sgd = np.zeros(len(y), bool)
    for i, (x, label) in enumerate(zip(X, y)):
        scaler.partial_fit(x[None])  # running standardisation, as the LA gets
        xs = scaler.transform(x[None])
        if i:
            correct_sgd[i] = sgd.predict(xs)[0] == label
        sgd.partial_fit(xs, [label], classes=classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test_la = float((model.predict_label(test.images) == test.labels).mean())
        test_sgd = float(sgd.score(scaler.transform(test.images), test.labels))
    return {
        "rows": len(y),
        "classes": list(train.class_names) or classes.tolist(),
        "vsml general": (correct_la, test_la),
        "SGDClassifier.partial_fit": (correct_sgd, test_sgd),
    }


def plot(result: dict, out: Path) -> Path:
    import matplotlib.pyplot as plt

    from vsml.eval.plots import shows_figures

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, result["rows"] + 1)
    for name in ("vsml general", "SGDClassifier.partial_fit"):
        correct, test_acc = result[name]
        ax.plot(steps, np.cumsum(correct) / steps, label=f"{name} (test {test_acc:.2f})")
    ax.set(xlabel="rows seen", ylabel="online accuracy so far", ylim=(0, 1), title="one pass, one row at a time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    if not shows_figures():  # in a notebook the figure stays open and is shown inline
        plt.close(fig)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", nargs="?", help="a CSV table (default: scikit-learn's wine table, written to wine.csv)")
    p.add_argument("--label", help="the label column (default: 'label', else the last column)")
    p.add_argument("--rows", type=int, help="stream only the first N rows of the shuffled train split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("csv_online.png"))
    args = p.parse_args(argv)
    csv = args.csv or str(write_wine(Path("wine.csv")))
    if args.label:
        csv = f"{csv}?label={args.label}"
    result = stream(csv, args.rows, args.seed)
    for name in ("vsml general", "SGDClassifier.partial_fit"):
        correct, test_acc = result[name]
        print(
            f"{name:26s} online accuracy {correct.mean():.3f} over {result['rows']} rows, test accuracy {test_acc:.3f}"
        )
    print(f"plot: {plot(result, args.out)}")
    return result


if __name__ == "__main__":
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # as a script: write the PNG, open no window
    main()
