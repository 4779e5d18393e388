"""Meta-objective, meta-optimizers (gradient, ES) as values, truncation and the ES estimator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _meta_support import TINY_VSML

from vsml.config import ConfigError
from vsml.data.episodes import EpisodeSampler, SamplerConfig
from vsml.learners.base import TaskSpec
from vsml.learners.vsml import VSML, VSMLConfig
from vsml.meta import AntitheticES, ESConfig, GradientConfig, GradientDescent, MetaProblem, ObjectiveConfig
from vsml.meta.distributed import make_mesh
from vsml.meta.es import antithetic_gradient, centered_ranks, z_scores


@pytest.fixture(scope="module")
def setup():
    learner = VSML(VSMLConfig(**TINY_VSML))
    sampler = EpisodeSampler(SamplerConfig(datasets=("digits",), flatten=True, steps=6, num_classes=3))
    task = TaskSpec(sampler.input_shape, sampler.num_classes, sampler.batch_size)
    params = learner.init_params(jax.random.PRNGKey(0))
    return learner, sampler, task, params


def _problem(setup, objective=ObjectiveConfig()):
    learner, sampler, task, _ = setup
    return MetaProblem(learner, task, objective, sampler, make_mesh())


def test_objective_kinds_and_truncation(setup):
    learner, sampler, task, params = setup
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    full, trunc = ObjectiveConfig(), ObjectiveConfig(truncation=4)
    vg = lambda obj: jax.value_and_grad(lambda p: _problem(setup, obj).meta_loss(p, keys), has_aux=True)(params)  # noqa: E731
    (loss, acc), g_full = vg(full)
    assert np.isfinite(loss) and 0 <= acc <= 1
    # Truncation changes only the gradient, never the value.
    (loss_t, _), g_t = vg(trunc)
    np.testing.assert_allclose(loss_t, loss, rtol=1e-6)
    flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)])  # noqa: E731
    assert not np.allclose(flat(g_t), flat(g_full))
    last, _ = _problem(setup, ObjectiveConfig(kind="last", last_steps=2)).meta_loss(params, keys)
    assert np.isfinite(last)
    with pytest.raises(ConfigError):
        ObjectiveConfig(kind="final")


def test_gradient_step_updates_and_guards(setup):
    _, _, _, params = setup
    problem = _problem(setup)
    opt = GradientDescent(GradientConfig(lr=1e-2, meta_batch=2))
    state = opt.init(params, jax.random.PRNGKey(0), problem)
    s1, m = opt.step(state, jax.random.PRNGKey(3), problem)
    assert bool(m.finite) and float(m.grad_norm) > 0
    # Episodes differentiated in groups (gradient.chunk) give the same step.
    _, m1 = GradientDescent(GradientConfig(lr=1e-2, meta_batch=2, chunk=1)).step(state, jax.random.PRNGKey(3), problem)
    np.testing.assert_allclose([m1.loss, m1.grad_norm], [m.loss, m.grad_norm], rtol=1e-4)
    with pytest.raises(ConfigError):
        GradientConfig(meta_batch=6, chunk=4)
    assert any(
        not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(params))
    )
    # Non-finite parameters -> non-finite loss -> the step is skipped, state unchanged.
    bad = jax.tree_util.tree_map(lambda x: x * jnp.nan, params)
    s2, m2 = opt.step(opt.init(bad, jax.random.PRNGKey(0), problem), jax.random.PRNGKey(3), problem)
    assert not bool(m2.finite)
    assert int(jax.tree_util.tree_leaves(s2.opt_state)[0]) == 0  # Adam count not advanced


def test_antithetic_estimator_matches_gradient_of_quadratic():
    target = jnp.arange(5.0)
    loss_fn = lambda th, k: (jnp.sum((th - target) ** 2), jnp.float32(0))  # noqa: E731
    cfg = ESConfig(population=4000, sigma=0.01)
    g, _, _, finite = antithetic_gradient(
        loss_fn, jnp.zeros(5), jax.random.split(jax.random.PRNGKey(0), 2000), cfg, make_mesh()
    )
    assert bool(finite)
    np.testing.assert_allclose(g, -2 * target, atol=0.35)
    r = centered_ranks(jnp.array([3.0, -1.0, 10.0]))
    np.testing.assert_allclose(r, [0.0, -0.5, 0.5])
    np.testing.assert_allclose(z_scores(jnp.array([1.0, 3.0])), [-1.0, 1.0])
    with pytest.raises(ConfigError):
        ESConfig(population=3)
    with pytest.raises(ConfigError, match="fitness_shaping"):
        ESConfig(fitness_shaping="ranks")
    assert ESConfig(fitness_shaping=True).fitness_shaping == "centered_ranks"  # configs of vsml 0.1


def test_es_step_runs(setup):
    _, _, _, params = setup
    problem = _problem(setup)
    opt = AntitheticES(ESConfig(population=4, fitness_shaping="centered_ranks", chunk=None))
    state = opt.init(params, jax.random.PRNGKey(0), problem)
    s1, m = opt.step(state, jax.random.PRNGKey(0), problem)
    assert bool(m.finite) and np.isfinite(float(m.loss))
    # Members evaluated 2 at a time (es.chunk) give the same estimate.
    opt2 = AntitheticES(ESConfig(population=4, fitness_shaping="centered_ranks", chunk=2))
    _, m2 = opt2.step(state, jax.random.PRNGKey(0), problem)
    np.testing.assert_allclose([m2.loss, m2.grad_norm], [m.loss, m.grad_norm], rtol=1e-4)
    assert any(
        not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(s1.params), jax.tree_util.tree_leaves(params))
    )
