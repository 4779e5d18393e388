"""How much a random perturbation of an LA's meta-parameters moves a meta-training config's
validation score: every entry shifted by ±SCALE (independent random signs, seed 0), then the
config's periodic meta-test (``eval:``) and its ``eval.score``. The size of Adam's first steps
(about lr per step and parameter, whatever the gradient) tells which meta learning rate a
sensitive start can take (docs/results/campaign.md).

    VSML_DATA_DIR=/path/to/data python tools/validation_sensitivity.py configs/campaign_general.yaml 1e-4 3e-5
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from vsml.meta.trainer import MetaTrainer, load_meta_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="meta-training config whose init and eval section are used")
    parser.add_argument("scales", nargs="+", type=float, help="perturbation sizes (0 = the start itself)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = load_meta_config(args.config, ["out=/tmp/vsml_validation_sensitivity"])
    trainer = MetaTrainer(cfg)
    start = trainer.init_params()
    rng = np.random.default_rng(args.seed)
    for scale in args.scales:
        params = jax.tree_util.tree_map(
            lambda x: x + scale * rng.choice([-1.0, 1.0], size=np.shape(x)).astype(np.float32), start
        )
        results = trainer.evaluate(params)
        print(
            json.dumps(
                {
                    "scale": scale,
                    "score": round(cfg.eval.selection_score(results), 4),
                    "meta_test": {k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
