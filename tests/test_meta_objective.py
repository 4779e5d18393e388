"""Meta-objective, gradient step, truncation and ES estimator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml.data.episodes import EpisodeSampler, SamplerConfig
from vsml.learners.base import TaskSpec
from vsml.learners.vsml import VSML, VSMLConfig
from vsml.meta import (ESConfig, GradientConfig, ObjectiveConfig, antithetic_gradient, centered_ranks, es_step,
                       gradient_step, make_optimizer, meta_loss)
from vsml.meta.distributed import make_mesh
from vsml.config import ConfigError

from _meta_support import TINY_VSML


@pytest.fixture(scope="module")
def setup():
    learner = VSML(VSMLConfig(**TINY_VSML))
    sampler = EpisodeSampler(SamplerConfig(datasets=("digits",), flatten=True, steps=6, num_classes=3))
    task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
    params = learner.init_params(jax.random.PRNGKey(0))
    return learner, sampler, task, params


def test_objective_kinds_and_truncation(setup):
    learner, sampler, task, params = setup
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    full, trunc = ObjectiveConfig(), ObjectiveConfig(truncation=4)
    vg = lambda obj: jax.value_and_grad(lambda p: meta_loss(learner, p, keys, sampler, task, obj), has_aux=True)(params)  # noqa: E731
    (loss, acc), g_full = vg(full)
    assert np.isfinite(loss) and 0 <= acc <= 1
    # Truncation changes only the gradient, never the value.
    (loss_t, _), g_t = vg(trunc)
    np.testing.assert_allclose(loss_t, loss, rtol=1e-6)
    flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)])  # noqa: E731
    assert not np.allclose(flat(g_t), flat(g_full))
    last, _ = meta_loss(learner, params, keys, sampler, task, ObjectiveConfig(kind="last", last_steps=2))
    assert np.isfinite(last)
    with pytest.raises(ConfigError):
        ObjectiveConfig(kind="final")


def test_gradient_step_updates_and_guards(setup):
    learner, sampler, task, params = setup
    cfg = GradientConfig(lr=1e-2, meta_batch=2)
    opt = make_optimizer(cfg.lr, cfg.clip)
    mesh = make_mesh()
    p1, s1, m = gradient_step(learner, task, ObjectiveConfig(), cfg, mesh, params, opt.init(params),
                              jax.random.PRNGKey(3), sampler)
    assert bool(m.finite) and float(m.grad_norm) > 0
    # Episodes differentiated in groups (gradient.chunk) give the same step.
    cfg1 = GradientConfig(lr=1e-2, meta_batch=2, chunk=1)
    _, _, m1 = gradient_step(learner, task, ObjectiveConfig(), cfg1, mesh, params, opt.init(params),
                             jax.random.PRNGKey(3), sampler)
    np.testing.assert_allclose([m1.loss, m1.grad_norm], [m.loss, m.grad_norm], rtol=1e-4)
    with pytest.raises(ConfigError):
        GradientConfig(meta_batch=6, chunk=4)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(params)))
    # Non-finite parameters -> non-finite loss -> the step is skipped, state unchanged.
    bad = jax.tree_util.tree_map(lambda x: x * jnp.nan, params)
    p2, s2, m2 = gradient_step(learner, task, ObjectiveConfig(), cfg, mesh, bad, opt.init(params),
                               jax.random.PRNGKey(3), sampler)
    assert not bool(m2.finite)
    assert int(jax.tree_util.tree_leaves(s2)[0]) == 0  # Adam count not advanced


def test_antithetic_estimator_matches_gradient_of_quadratic():
    target = jnp.arange(5.0)
    loss_fn = lambda th, k: (jnp.sum((th - target) ** 2), jnp.float32(0))  # noqa: E731
    cfg = ESConfig(population=4000, sigma=0.01)
    g, _, _, finite = antithetic_gradient(loss_fn, jnp.zeros(5), jax.random.split(jax.random.PRNGKey(0), 2000), cfg, make_mesh())
    assert bool(finite)
    np.testing.assert_allclose(g, -2 * target, atol=0.35)
    r = centered_ranks(jnp.array([3.0, -1.0, 10.0]))
    np.testing.assert_allclose(r, [0.0, -0.5, 0.5])
    with pytest.raises(ConfigError):
        ESConfig(population=3)


def test_es_step_runs(setup):
    learner, sampler, task, params = setup
    cfg = ESConfig(population=4, fitness_shaping=True, chunk=None)
    opt = make_optimizer(cfg.lr)
    p1, _, m = es_step(learner, task, ObjectiveConfig(), cfg, make_mesh(), params, opt.init(params),
                       jax.random.PRNGKey(0), sampler)
    assert bool(m.finite) and np.isfinite(float(m.loss))
    # Members evaluated 2 at a time (es.chunk) give the same estimate.
    cfg2 = ESConfig(population=4, fitness_shaping=True, chunk=2)
    p2, _, m2 = es_step(learner, task, ObjectiveConfig(), cfg2, make_mesh(), params, opt.init(params),
                        jax.random.PRNGKey(0), sampler)
    np.testing.assert_allclose([m2.loss, m2.grad_norm], [m.loss, m.grad_norm], rtol=1e-4)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(params)))

