"""Relative meta-steps (``<estimator>.relative``): Adam's step taken in log|θ|, θ ← θ·exp(u), so
every entry moves by a fraction of itself, keeps its sign, and zeros stay zero; ES / PES perturb
θ ± σ·z⊙θ and their estimates are then gradients with respect to log|θ|."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _meta_support import tiny_config

from vsml.meta.distributed import make_mesh
from vsml.meta.es import ESConfig, antithetic_gradient
from vsml.meta.optimizer import guarded_update, make_optimizer
from vsml.meta.pes import pes_estimate
from vsml.meta.trainer import MetaTrainer, meta_config_from_dict


def test_relative_update_is_adams_step_in_log_space():
    params = {"a": jnp.array([2.0, -0.5, 0.0, 1e-3]), "b": jnp.array([3.0, -4.0])}
    grads = {"a": jnp.array([0.1, 0.2, 0.3, -4.0]), "b": jnp.array([1.0, 1.0])}  # ∂L/∂θ
    lr = 0.01
    opt = make_optimizer(lr)
    log_grads = jax.tree_util.tree_map(jnp.multiply, grads, params)  # ∂L/∂log|θ| = θ·∂L/∂θ
    mask = {"a": jnp.ones(4), "b": jnp.zeros(2)}
    new, _, _, ok = guarded_update(opt, params, opt.init(params), log_grads, jnp.float32(1.0), mask, relative=True)
    assert bool(ok)
    # Adam's first (bias-corrected) step is -lr·sign(g): θ·exp(-lr·sign(θ·∂L/∂θ)); the zero stays 0
    want = np.array(params["a"]) * np.exp(-lr * np.sign(np.array(log_grads["a"])))
    np.testing.assert_allclose(np.array(new["a"]), want, rtol=1e-5)
    assert float(new["a"][2]) == 0.0
    np.testing.assert_array_equal(np.array(new["b"]), np.array(params["b"]))  # frozen
    # an absolute step of the same rate moves the small entry by 10x itself instead of by 1 %
    new_abs, *_ = guarded_update(opt, params, opt.init(params), grads, jnp.float32(1.0), mask)
    assert abs(float(new_abs["a"][3]) - 1e-3) > 5e-3 and abs(float(new["a"][3]) / 1e-3 - 1) < 0.011


def _linear_loss(c):
    return lambda theta, k: (jnp.dot(c, theta), jnp.float32(0))


def test_relative_es_noise_estimates_the_log_space_gradient():
    """For a linear loss c·θ, the relative estimate is c⊙θ (∂L/∂log|θ|), not c⊙θ²."""
    theta = jnp.array([2.0, -0.5, 0.0, 4.0])
    c = jnp.array([1.0, 3.0, 2.0, -0.5])
    cfg = ESConfig(population=2 * 40000, sigma=0.01, fitness_shaping="none", chunk=None)
    keys = jax.random.split(jax.random.PRNGKey(0), cfg.population // 2)
    g, *_ = antithetic_gradient(_linear_loss(c), theta, keys, cfg, make_mesh(), None, theta)
    np.testing.assert_allclose(np.array(g), np.array(c * theta), atol=0.04)
    assert float(g[2]) == 0.0 or abs(float(g[2])) < 0.04


def test_relative_pes_noise_estimates_the_log_space_gradient():
    theta = jnp.array([2.0, -0.5, 4.0])
    c = jnp.array([1.0, 3.0, -0.5])
    pairs = 40000

    def unroll(th, s, x):
        return s, (jnp.dot(c, th), jnp.float32(0))

    keys = jax.random.split(jax.random.PRNGKey(1), pairs)
    g, total, *_ = pes_estimate(
        unroll,
        theta,
        jnp.zeros(2 * pairs),
        jnp.zeros((pairs, 3)),
        jnp.zeros(pairs),
        keys,
        0.01,
        make_mesh(),
        None,
        None,
        theta,
    )
    np.testing.assert_allclose(np.array(g), np.array(c * theta), atol=0.05)
    # the accumulated noise is the unit noise z (log space), not z⊙θ
    np.testing.assert_allclose(float(jnp.std(total[:, 2])), 1.0, atol=0.02)


@pytest.mark.parametrize("method", ["gradient", "es", "pes", "tbptt"])
def test_relative_run_keeps_zeros_and_signs_and_moves_by_fractions(tmp_path, method):
    life = {"lifetime": {"truncation": 4, "min_length": 4, "max_length": 8}} if method in ("pes", "tbptt") else {}
    lr = 0.01
    section = {"relative": True, "lr": lr, **life, **({"population": 4} if method in ("es", "pes") else {})}
    trainer = MetaTrainer(
        meta_config_from_dict(tiny_config(tmp_path / method, method=method, iterations=3, **{method: section}))
    )
    start = trainer.init_params()
    # zero some entries of every leaf, as a cloned LA has: they must stay exactly zero
    start = jax.tree_util.tree_map(lambda a: jnp.where(jnp.arange(a.size).reshape(a.shape) % 3 == 0, 0.0, a), start)
    trainer.init_params = lambda: start  # the run starts from these (instance attribute)
    result = trainer.run()
    moved = 0
    for a, b in zip(jax.tree_util.tree_leaves(start), jax.tree_util.tree_leaves(result.params)):
        a, b = np.asarray(a), np.asarray(b)
        assert np.all(b[a == 0] == 0)
        nz = a != 0
        if not nz.any():
            continue
        assert np.all(np.sign(b[nz]) == np.sign(a[nz]))
        ratio = np.abs(np.log(b[nz] / a[nz]))
        assert ratio.max() <= 3 * 3 * lr  # three Adam steps of about lr each in log|θ|
        moved += int((ratio > 0).sum())
    assert moved > 0
