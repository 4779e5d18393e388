"""How much a random perturbation of an LA's meta-parameters moves a meta-training config's
validation score: every entry shifted by ±SCALE (independent random signs, seed 0), then the
config's periodic meta-test (``eval:``) and its ``eval.score``. The size of Adam's first steps
(about lr per step and parameter, whatever the gradient) tells which meta learning rate a
sensitive start can take (docs/results/campaign.md).

    VSML_DATA_DIR=/path/to/data python tools/validation_sensitivity.py configs/campaign_general.yaml 1e-4 3e-5

``--relative`` multiplies each entry by 1 ± SCALE instead (zeros stay zero: the size of the
steps of ``<estimator>.relative``). ``--only REGEX`` (repeatable) perturbs only the
meta-parameters whose path matches (as an estimator's ``trainable``), e.g. ``--only 'rnn/0/b$' --only 'rnn/0/w[fb]'``.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from vsml.meta.optimizer import trainable_mask
from vsml.meta.trainer import MetaTrainer, load_meta_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="meta-training config whose init and eval section are used")
    parser.add_argument("scales", nargs="+", type=float, help="perturbation sizes (0 = the start itself)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--relative", action="store_true", help="perturb x -> x·(1 ± SCALE)")
    parser.add_argument("--only", action="append", default=[], help="regex of meta-parameter paths to perturb")
    args = parser.parse_args(argv)
    cfg = load_meta_config(args.config, ["out=/tmp/vsml_validation_sensitivity"])
    trainer = MetaTrainer(cfg)
    start = trainer.init_params()
    mask = trainable_mask(start, args.only, "--only")
    if mask is None:
        mask = jax.tree_util.tree_map(lambda x: np.ones(np.shape(x), np.float32), start)
    rng = np.random.default_rng(args.seed)

    def perturb(x, m, scale):
        signs = rng.choice([-1.0, 1.0], size=np.shape(x)).astype(np.float32)
        return x + m * scale * signs * (x if args.relative else 1.0)

    for scale in args.scales:
        params = jax.tree_util.tree_map(lambda x, m: perturb(x, m, scale), start, mask)
        results = trainer.evaluate(params)
        print(
            json.dumps(
                {
                    "scale": scale,
                    "only": args.only,
                    "relative": args.relative,
                    "score": round(cfg.eval.selection_score(results), 4),
                    "meta_test": {k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
