"""Long-horizon estimators: PES is unbiased over whole lifetimes (unlike ES on truncations),
truncated BPTT equals the truncated full-unroll gradient, and both run in the trainer and resume
bit-identically (persistent particles live in the checkpoint)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _meta_support import tiny_config

from vsml.config import ConfigError
from vsml.learners.base import run_steps
from vsml.meta import LifetimeConfig
from vsml.meta.distributed import make_mesh
from vsml.meta.objective import ObjectiveConfig
from vsml.meta.pes import PESConfig, pes_estimate
from vsml.meta.trainer import MetaTrainer, meta_config_from_dict

K, N_TRUNC, PAIRS = 4, 3, 20000


def _toy_unroll(theta, s, x):
    """A one-unit linear recurrent inner loop whose state carries credit across truncations."""

    def step(s, xt):
        s = theta[0] * s + theta[1] * (xt + 1.0)
        return s, (s - 0.5) ** 2

    s, losses = jax.lax.scan(step, s, x)
    return s, (losses.mean(), jnp.float32(0))


def _lifetime_gradient(theta, xs):
    """Exact gradient of the sum of truncation losses over the whole lifetime, averaged over lifetimes."""

    def total(th, x):
        s, out = 0.0, 0.0
        for tau in range(N_TRUNC):
            s, (l, _) = _toy_unroll(th, s, x[tau])
            out = out + l
        return out

    return jax.grad(lambda th: jax.vmap(lambda x: total(th, x))(xs).mean())(theta)


def test_pes_is_unbiased_over_the_lifetime_and_truncated_es_is_not():
    theta = jnp.array([0.9, 0.1])
    xs = jax.random.normal(jax.random.PRNGKey(0), (PAIRS, N_TRUNC, K))
    true = _lifetime_gradient(theta, xs)
    mesh, sigma = make_mesh(), 0.01

    def run(accumulate: bool):
        states, noise, g = jnp.zeros(2 * PAIRS), jnp.zeros((PAIRS, 2)), jnp.zeros(2)
        for tau in range(N_TRUNC):
            keys = jax.random.split(jax.random.PRNGKey(100 + tau), PAIRS)
            est, acc_noise, states, _, _ = pes_estimate(
                _toy_unroll, theta, states, noise, xs[:, tau], keys, sigma, mesh, None
            )
            noise = acc_noise if accumulate else jnp.zeros_like(noise)
            g = g + est
        return g

    pes, truncated_es = run(True), run(False)
    np.testing.assert_allclose(pes, true, rtol=0.1, atol=0.02 * float(jnp.linalg.norm(true)))
    # ES that forgets earlier perturbations only sees within-truncation effects: clearly biased here
    assert float(jnp.linalg.norm(truncated_es - true)) > 0.4 * float(jnp.linalg.norm(true))


def test_pes_support_noise_leaves_zero_parameters_alone():
    """``pes.noise: support``: no noise, hence no estimate, where the mask is zero; the perturbed
    coordinates are still estimated without bias (the noise coordinates are independent)."""
    theta = jnp.array([0.9, 0.1])
    xs = jax.random.normal(jax.random.PRNGKey(0), (PAIRS, N_TRUNC, K))

    true = _lifetime_gradient(theta, xs)
    mesh, mask = make_mesh(), jnp.array([1.0, 0.0])
    states, noise, g = jnp.zeros(2 * PAIRS), jnp.zeros((PAIRS, 2)), jnp.zeros(2)
    for tau in range(N_TRUNC):
        keys = jax.random.split(jax.random.PRNGKey(100 + tau), PAIRS)
        est, noise, states, _, _ = pes_estimate(
            _toy_unroll, theta, states, noise, xs[:, tau], keys, 0.01, mesh, None, mask
        )
        g = g + est
    assert float(g[1]) == 0.0 and float(jnp.abs(noise[:, 1]).max()) == 0.0
    np.testing.assert_allclose(g[0], true[0], rtol=0.1, atol=0.02 * float(jnp.linalg.norm(true)))
    with pytest.raises(ConfigError, match="pes.noise"):
        PESConfig(noise="most")


def test_tbptt_equals_the_truncated_full_unroll_gradient():
    """The sum of truncated-BPTT gradients over a lifetime equals backprop through the whole
    lifetime with the gradient stopped at truncation boundaries (run_steps(truncation=K))."""
    from vsml.learners.base import TaskSpec
    from vsml.learners.vsml import VSML, VSMLConfig

    learner = VSML(VSMLConfig(state_size=4, message_size=2, label_feeding=True))
    task = TaskSpec((5,), 3, 1)
    params = learner.init_params(jax.random.PRNGKey(0))
    xs = jax.random.normal(jax.random.PRNGKey(1), (3 * K, 1, 5))
    ys = jax.random.randint(jax.random.PRNGKey(2), (3 * K, 1), 0, 3)
    s0 = learner.init_state(params, jax.random.PRNGKey(3), task)
    full = jax.grad(lambda p: run_steps(learner, p, s0, xs, ys, truncation=K)[1].losses.sum())(params)

    def truncation_loss(p, s, x, y):
        s, res = run_steps(learner, p, jax.lax.stop_gradient(s), x, y)
        return res.losses.sum(), s

    truncation_grad = jax.jit(jax.grad(truncation_loss, has_aux=True))
    g, s = None, s0
    for tau in range(3):
        sl = slice(tau * K, (tau + 1) * K)
        gt, s = truncation_grad(params, s, xs[sl], ys[sl])
        g = gt if g is None else jax.tree_util.tree_map(jnp.add, g, gt)
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(g)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "method,section",
    [("pes", {"population": 4, "sigma": 0.05, "lr": 0.01, "chunk": None}), ("tbptt", {"particles": 2, "lr": 0.01})],
)
def test_persistent_training_resumes_bit_identically(tmp_path, method, section):
    life = {"truncation": 4, "min_length": 8, "max_length": 24}
    over = {
        "method": method,
        method: {**section, "lifetime": life},
        "iterations": 6,
        "checkpoint": {"every": 3, "keep": 2},
    }
    straight = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "a", **over))).run()

    class Stop(Exception):
        pass

    def stop(i):
        if i == 3:
            raise Stop

    cfg = meta_config_from_dict(tiny_config(tmp_path / "b", **over))
    with pytest.raises(Stop):
        MetaTrainer(cfg).run(on_iteration=stop)
    resumed = MetaTrainer(cfg).run(resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in straight.history[3:]] == [r["loss"] for r in resumed.history]
    assert all(np.isfinite(r["loss"]) for r in straight.history)


def test_persistent_estimators_refuse_what_they_cannot_do(tmp_path):
    with pytest.raises(ConfigError, match="min_length"):
        LifetimeConfig(truncation=10, min_length=5, max_length=20)
    cfg = tiny_config(
        tmp_path / "f",
        method="pes",
        pes={"population": 2, "lifetime": {"truncation": 2, "min_length": 2, "max_length": 4}},
        objective={"kind": "last"},
    )
    with pytest.raises(ConfigError, match="mean online loss"):
        MetaTrainer(meta_config_from_dict(cfg)).run()


@pytest.mark.parametrize("method", ["gradient", "pes"])
def test_task_families_train_together(tmp_path, method):
    """Several input sizes and class counts in every meta-step (one parameter set)."""
    over = {
        "method": method,
        "iterations": 2,
        "objective": {"normalize": True},
        "families": [{"num_classes": 2, "image_size": [4, 4]}, {"num_classes": 3}],
        "pes": {"population": 2, "lifetime": {"truncation": 4, "min_length": 4, "max_length": 8}, "chunk": None},
    }
    trainer = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / method, **over)))
    problem = trainer.problem(0)
    assert [t.input_shape for t in problem.tasks] == [(16,), (64,)] and [t.num_classes for t in problem.tasks] == [2, 3]
    result = trainer.run()
    assert all(np.isfinite(r["loss"]) and r["finite"] for r in result.history)
    with pytest.raises(ConfigError, match="families\\[0\\]"):
        MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "bad", families=[{"num_clases": 2}]))).problem(0)


def test_slim_checkpoint_resumes_with_fresh_lifetimes(tmp_path, capsys):
    """`vsml convert --slim` keeps a persistent run's meta-parameters and optimizer state only (byte
    for byte); the run resumes from it with fresh particles and says so."""
    from vsml import artifacts
    from vsml.cli import main

    over = {
        "method": "tbptt",
        "tbptt": {"particles": 2, "lr": 0.01, "lifetime": {"truncation": 4, "min_length": 8, "max_length": 24}},
        "iterations": 5,
        "checkpoint": {"every": 3, "keep": 2},
    }
    cfg = meta_config_from_dict(tiny_config(tmp_path / "r", **over))

    class Stop(Exception):
        pass

    def stop(i):
        if i == 3:
            raise Stop

    with pytest.raises(Stop):
        MetaTrainer(cfg).run(on_iteration=stop)
    ckpt = tmp_path / "r" / "checkpoints" / "ckpt_00000003.npz"
    full = artifacts.load(ckpt)
    assert main(["convert", "--slim", str(ckpt), "-o", str(tmp_path / "slim.npz")]) == 0
    slim = artifacts.load(tmp_path / "slim.npz", kind="checkpoint")
    assert set(slim.groups) == {"params", "opt_state"} and slim.meta["slim"] and slim.meta["iteration"] == 3
    for a, b in zip(full.arrays["params"] + full.arrays["opt_state"], slim.arrays["params"] + slim.arrays["opt_state"]):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "slim.npz").replace(ckpt)
    seen = []
    resumed = MetaTrainer(cfg, log=seen.append).run(resume=True)
    assert any("slim checkpoint" in m and "fresh particles" in m for m in seen)
    assert len(resumed.history) == 2 and all(np.isfinite(r["loss"]) for r in resumed.history)
    assert main(["convert", "--slim", str(tmp_path / "r" / "learner.npz")]) == 2
    assert "not a meta-training checkpoint" in capsys.readouterr().err


def _band_weights_reference(bands, t0, steps, length):
    """Plain-Python step weights: each band's mean counts equally over the steps the lifetime reaches."""
    edges = [0, *bands, length]
    spans = [(lo, min(hi, length)) for lo, hi in zip(edges[:-1], edges[1:]) if min(hi, length) > lo]
    out = []
    for t in range(t0, t0 + steps):
        if t >= length:
            out.append(0.0)
            continue
        lo, hi = next(s for s in spans if s[0] <= t < s[1])
        out.append(length / (len(spans) * (hi - lo)))
    return np.array(out)


@pytest.mark.parametrize(
    "bands,t0,steps,length",
    [
        ((100, 1000), 0, 300, 300),
        ((100, 1000), 900, 200, 5000),
        ((100, 1000), 0, 50, 50),
        ((2, 6), 4, 8, 12),
        ((3,), 0, 10, 8),
    ],
)
def test_step_weights_match_a_plain_reference(bands, t0, steps, length):
    from vsml.meta.objective import step_weights

    w = np.asarray(step_weights(bands, t0, steps, length))
    np.testing.assert_allclose(w, _band_weights_reference(bands, t0, steps, length), rtol=1e-6)
    # over a whole lifetime, mean(w * loss) is the mean of the band means
    loss = np.random.default_rng(0).random(length)
    whole = np.asarray(step_weights(bands, 0, length, length))
    edges = [0, *[b for b in bands if b < length], length]
    band_means = [loss[lo:hi].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    np.testing.assert_allclose((whole * loss).mean(), np.mean(band_means), rtol=1e-5)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5])
def test_band_share_mixes_the_band_balanced_and_the_plain_mean(share):
    """``objective.band_share``: over a whole lifetime, mean(w * loss) = share x (mean of band means)
    + (1 - share) x (plain mean), and per step the weight is the plain reference's mixed with 1."""
    from vsml.meta.objective import step_weights

    bands, length = (100, 1000), 5000
    w = np.asarray(step_weights(bands, 0, length, length, share))
    ref = share * _band_weights_reference(bands, 0, length, length) + (1 - share)
    np.testing.assert_allclose(w, ref, rtol=1e-6)
    loss = np.random.default_rng(1).random(length)
    band_mean = np.mean([loss[:100].mean(), loss[100:1000].mean(), loss[1000:].mean()])
    np.testing.assert_allclose((w * loss).mean(), share * band_mean + (1 - share) * loss.mean(), rtol=1e-5)
    tail = np.asarray(step_weights(bands, length - 4, 8, length, share))
    assert (tail[4:] == 0).all()  # past the lifetime's end nothing counts, whatever the share
    assert ObjectiveConfig(bands=bands, band_share=share).band_share == share
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="objective.band_share"):
            ObjectiveConfig(bands=bands, band_share=bad)
    with pytest.raises(ConfigError, match="needs objective.bands"):
        ObjectiveConfig(band_share=0.5)


def test_pes_estimates_the_band_balanced_lifetime_gradient():
    """``objective.bands``: weighting each truncation step by its lifetime position makes PES
    estimate the gradient of the band-balanced lifetime objective (early band = late band), which
    differs from the plain mean's gradient on the toy lifetime."""
    from vsml.meta.objective import step_weights

    theta = jnp.array([0.9, 0.1])
    xs = jax.random.normal(jax.random.PRNGKey(0), (PAIRS, N_TRUNC, K))
    length, bands = N_TRUNC * K, (2, 6)
    w = step_weights(bands, 0, length, length).reshape(N_TRUNC, K)

    def weighted_unroll(theta, s, xw):
        x, wt = xw

        def step(s, xt):
            s = theta[0] * s + theta[1] * (xt + 1.0)
            return s, (s - 0.5) ** 2

        s, losses = jax.lax.scan(step, s, x)
        return s, ((wt * losses).mean(), jnp.float32(0))

    def total(th, x):
        s, out = 0.0, 0.0
        for tau in range(N_TRUNC):
            s, (l, _) = weighted_unroll(th, s, (x[tau], w[tau]))
            out = out + l
        return out

    true = jax.grad(lambda th: jax.vmap(lambda x: total(th, x))(xs).mean())(theta)
    plain = _lifetime_gradient(theta, xs)
    mesh, states, noise, g = make_mesh(), jnp.zeros(2 * PAIRS), jnp.zeros((PAIRS, 2)), jnp.zeros(2)
    for tau in range(N_TRUNC):
        keys = jax.random.split(jax.random.PRNGKey(100 + tau), PAIRS)
        data = (xs[:, tau], jnp.broadcast_to(w[tau], (PAIRS, K)))
        est, noise, states, _, _ = pes_estimate(weighted_unroll, theta, states, noise, data, keys, 0.01, mesh, None)
        g = g + est
    np.testing.assert_allclose(g, true, rtol=0.1, atol=0.02 * float(jnp.linalg.norm(true)))
    assert float(jnp.linalg.norm(true - plain)) > 0.2 * float(jnp.linalg.norm(plain))


def test_lifetimes_are_log_uniform_and_staggered():
    """Lengths log-uniform over [min_length, max_length] (rounded up to the truncation); the first
    lifetimes start at random truncations, so one meta-step mixes early and late lifetime steps."""
    from vsml.meta import persistent as ps

    class Sampler:
        def sample_task(self, key):
            return jnp.zeros(())

    cfg = LifetimeConfig(truncation=10, min_length=100, max_length=10000)
    p = ps.init_particles(Sampler(), jax.random.PRNGKey(0), 4000, cfg)
    length, t = np.asarray(p.length), np.asarray(p.t)
    assert length.min() >= 100 and length.max() <= 10000 and (length % 10 == 0).all()
    u = (np.log(length) - np.log(100)) / (np.log(10000) - np.log(100))  # ~ uniform on [0, 1]
    np.testing.assert_allclose(np.quantile(u, [0.25, 0.5, 0.75]), [0.25, 0.5, 0.75], atol=0.03)
    assert (t % 10 == 0).all() and (t < length).all()
    frac = t / length
    assert (frac < 0.1).mean() > 0.05 and (frac > 0.9).mean() > 0.05  # early and late windows in one step
    w = np.asarray(ps.truncation_weights(p, ObjectiveConfig(bands=(100, 1000)), 10))
    long = length >= 3000  # there the first band weighs > 10x a step of the late band
    assert w.shape == (4000, 10) and w[long & (t < 100)].min() > 10 * w[long & (t >= 1000)].max()


def test_band_objective_trains_every_estimator(tmp_path):
    over = {"objective": {"bands": [2, 6]}, "iterations": 2}
    for method, section in [
        ("gradient", {}),
        (
            "tbptt",
            {"tbptt": {"particles": 2, "lr": 0.01, "lifetime": {"truncation": 4, "min_length": 4, "max_length": 16}}},
        ),
        (
            "pes",
            {"pes": {"population": 2, "lifetime": {"truncation": 4, "min_length": 4, "max_length": 16}, "chunk": None}},
        ),
    ]:
        result = MetaTrainer(
            meta_config_from_dict(tiny_config(tmp_path / method, method=method, **section, **over))
        ).run()
        assert all(np.isfinite(r["loss"]) and r["finite"] for r in result.history), method
    for bad in ([0, 5], [10, 5], [3, 3]):
        with pytest.raises(ConfigError, match="objective.bands"):
            ObjectiveConfig(bands=tuple(bad))
    with pytest.raises(ConfigError, match="objective.bands"):
        ObjectiveConfig(kind="last", bands=(5,))


def test_adam_eps_reaches_every_meta_optimizer(tmp_path):
    """``<section>.eps`` is Adam's epsilon of that estimator (a much smaller one: plateau option)."""
    grads = {"w": jnp.full((3,), 1e-6)}
    for method in ("gradient", "es", "pes", "tbptt"):
        steps = []
        for eps in (1e-8, 1e-3):
            section = {
                "eps": eps,
                **(
                    {"lifetime": {"truncation": 4, "min_length": 4, "max_length": 8}}
                    if method in ("pes", "tbptt")
                    else {}
                ),
            }
            trainer = MetaTrainer(
                meta_config_from_dict(tiny_config(tmp_path / f"{method}{eps}", method=method, **{method: section}))
            )
            opt = trainer.optimizer(0).optimizer
            updates, _ = opt.update(grads, opt.init(grads), grads)
            steps.append(float(jnp.abs(updates["w"]).max()))
        assert steps[1] < 0.01 * steps[0], method


@pytest.mark.parametrize("method", ["gradient", "es", "pes", "tbptt"])
def test_trainable_subset_freezes_the_rest(tmp_path, method):
    """``<section>.trainable``: only meta-parameters whose path matches are trained (fewer
    perturbed dimensions for ES / PES); the others stay bit for bit at their start."""
    from vsml.meta.optimizer import param_path

    life = {"lifetime": {"truncation": 4, "min_length": 4, "max_length": 8}} if method in ("pes", "tbptt") else {}
    section = {"trainable": ["/b$"], **life, **({"population": 4} if method in ("es", "pes") else {})}
    trainer = MetaTrainer(
        meta_config_from_dict(tiny_config(tmp_path / method, method=method, iterations=2, **{method: section}))
    )
    start = trainer.init_params()
    result = trainer.run()
    moved = {}
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(start), jax.tree_util.tree_leaves(result.params)):
        moved[param_path(path)] = not np.array_equal(np.asarray(a), np.asarray(b))
    assert moved["rnn/0/b"] and not any(v for k, v in moved.items() if k != "rnn/0/b"), moved
    with pytest.raises(ConfigError, match="matches no meta-parameter"):
        MetaTrainer(
            meta_config_from_dict(
                tiny_config(
                    tmp_path / f"{method}x",
                    method=method,
                    iterations=1,
                    **{method: {**section, "trainable": ["nothing"]}},
                )
            )
        ).run()
    with pytest.raises(ConfigError, match="not a regular expression"):
        meta_config_from_dict(
            tiny_config(tmp_path / f"{method}y", method=method, **{method: {**section, "trainable": ["("]}})
        )
