"""EpisodeSampler: determinism, shapes, augmentations, class subsets, few-shot, mixtures, jit/vmap."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _data_support import need_real

from vsml.config import ConfigError, from_dict
from vsml.data import DataError, DatasetSpec, EpisodeSampler, FewShotConfig, SamplerConfig

KEY = jax.random.PRNGKey(0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vsml-cache"))


def test_deterministic_and_shaped():
    s = EpisodeSampler(SamplerConfig(datasets=("digits",), steps=30, batch_size=2))
    xs, ys = s.sample(KEY, 4)
    assert xs.shape == (4, 30, 2, 8, 8, 1) and xs.dtype == jnp.float32
    assert ys.shape == (4, 30, 2) and ys.dtype == jnp.int32
    xs2, ys2 = s.sample(KEY, 4)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(ys, ys2)
    xs3, _ = s.sample(jax.random.PRNGKey(1), 4)
    assert not np.allclose(xs, xs3)
    assert s.input_shape == (8, 8, 1) and s.num_classes == 10 and s.steps == 30
    # a fresh sampler gives the same episodes: everything comes from the key
    xs4, _ = EpisodeSampler(SamplerConfig(datasets=("digits",), steps=30, batch_size=2)).sample(KEY, 4)
    np.testing.assert_array_equal(xs, xs4)


def test_examples_are_normalised_real_examples_with_their_labels():
    s = EpisodeSampler(SamplerConfig(datasets=("digits",), steps=50, flatten=True))
    xs, ys = s.sample(KEY, 8)
    from vsml.data import load

    d = load("digits", "train")
    table = {tuple(np.round((x.ravel() - 0.3052) / 0.3759, 4)): int(y) for x, y in zip(d.images, d.labels)}
    for x, y in zip(np.asarray(xs).reshape(-1, 64), np.asarray(ys).ravel()):
        assert table[tuple(np.round(x, 4))] == y


def test_jit_and_vmap():
    s = EpisodeSampler(SamplerConfig(datasets=("random",), steps=10))
    keys = jax.random.split(KEY, 3)
    xs_v, ys_v = jax.vmap(s.sample_episode)(keys)
    xs_j, ys_j = jax.jit(lambda smp, k: smp.sample(k, 3))(s, KEY)  # the sampler is a pytree
    assert xs_v.shape == xs_j.shape == (3, 10, 1, 28, 28, 1)
    xs_ref, _ = s.sample(KEY, 3)
    np.testing.assert_array_equal(xs_j, xs_ref)


def test_projection_fixed_within_episode_differs_across():
    base = SamplerConfig(datasets=("random",), steps=60, normalize=False)
    plain = EpisodeSampler(base)
    proj = EpisodeSampler(dataclasses.replace(base, projection="episode"))
    xs, _ = plain.sample(KEY, 2)  # same key, same examples: the projection comes from its own stream
    ps, _ = proj.sample(KEY, 2)
    assert ps.shape == (2, 60, 1, 784) and proj.input_shape == (784,)
    x, p = np.asarray(xs).reshape(2, 60, 784), np.asarray(ps).reshape(2, 60, 784)
    W = []
    for e in range(2):
        src = {tuple(r): i for i, r in enumerate(x[e])}
        first = [src[tuple(r)] for r in x[e]]  # first step showing the same image
        np.testing.assert_allclose(p[e], p[e][first], atol=1e-5)  # same image -> same output in an episode
        rows = sorted(set(first))
        W.append(np.linalg.lstsq(x[e][rows], p[e][rows], rcond=None)[0])
        np.testing.assert_allclose(x[e][rows] @ W[e], p[e][rows], atol=1e-3)  # linear in the input
        ratio = p[e].var() / x[e].var()
        assert 0.8 < ratio < 1.25  # Glorot-uniform with d_in == d_out keeps the variance
    shared = set(map(tuple, x[0])) & set(map(tuple, x[1]))
    assert shared  # an image seen in both episodes is projected differently
    img = np.asarray(next(iter(shared)))
    y0 = p[0][[tuple(r) == tuple(img) for r in x[0]]][0]
    y1 = p[1][[tuple(r) == tuple(img) for r in x[1]]][0]
    assert not np.allclose(y0, y1, atol=1e-2)


def test_fixed_projection_and_permutation_shared_by_episodes():
    cfg = SamplerConfig(datasets=("random",), steps=40, permutation="fixed", normalize=False)
    xs, _ = EpisodeSampler(cfg).sample(KEY, 2)
    from vsml.data import load

    imgs = load("random", "train").images.reshape(20, 784)
    rows = {tuple(np.sort(x)) for x in imgs}
    flat = np.asarray(xs).reshape(-1, 784)
    assert all(tuple(np.sort(x)) in rows for x in flat)  # a permutation of some image's pixels
    src = {tuple(np.sort(x)): x for x in imgs}
    perms = set()
    for x in flat:
        s = src[tuple(np.sort(x))]
        perms.add(tuple(np.argsort(s)[np.argsort(np.argsort(x))]))
    assert len(perms) == 1  # one permutation for all steps and episodes
    p = EpisodeSampler(SamplerConfig(datasets=("random",), steps=5, projection="fixed", projection_dim=50))
    assert p.sample(KEY, 2)[0].shape == (2, 5, 1, 50)


def test_class_subsets_relabel_and_permute():
    s = EpisodeSampler(
        SamplerConfig(datasets=("digits",), steps=200, num_classes=3, permute_classes=True, flatten=True)
    )
    xs, ys = s.sample(KEY, 16)
    assert s.num_classes == 3 and set(np.unique(ys)) == {0, 1, 2}
    from vsml.data import load

    d = load("digits", "train")
    table = {tuple(np.round((x.ravel() - 0.3052) / 0.3759, 4)): int(y) for x, y in zip(d.images, d.labels)}
    mappings = set()
    for e in range(16):
        orig = [table[tuple(np.round(x, 4))] for x in np.asarray(xs[e, :, 0])]
        pairs = set(zip(np.asarray(ys[e, :, 0]).tolist(), orig))
        assert len(pairs) == 3 and len({o for _, o in pairs}) == 3  # a bijection label <-> class
        mappings.add(tuple(sorted(pairs)))
    assert len(mappings) > 5  # different subsets / orders per episode
    # fixed class subset of a member, relabelled in the given order
    f = EpisodeSampler(SamplerConfig(datasets=(DatasetSpec("digits", classes=(7, 3)),), steps=100, flatten=True))
    xs, ys = f.sample(KEY, 2)
    orig = [table[tuple(np.round(x, 4))] for x in np.asarray(xs).reshape(-1, 64)]
    assert set(zip(np.asarray(ys).ravel().tolist(), orig)) == {(0, 7), (1, 3)}


def test_balanced_and_output_padding():
    s = EpisodeSampler(
        SamplerConfig(datasets=(DatasetSpec("digits", classes=(0, 1)),), steps=2000, balanced=True, output_classes=10)
    )
    _, ys = s.sample(KEY, 1)
    assert s.num_classes == 10 and 0.45 < float(np.mean(ys)) < 0.55


def test_resize_pad_and_mixture():
    cfg = SamplerConfig(
        datasets=(DatasetSpec("digits", weight=3.0), "random", "sum"), image_size=(14, 14), pad_to=(16, 16), steps=20
    )
    s = EpisodeSampler(cfg)
    xs, ys = s.sample(KEY, 64)
    assert xs.shape == (64, 20, 1, 16, 16, 1) and s.num_classes == 10
    border = np.asarray(xs)[..., 0, :, 0]
    # rows 0 and 15 are padding: constant within each episode (the dataset's normalised black)
    assert np.allclose(border.std(axis=(1, 2, 3)), 0, atol=1e-5)
    # members are chosen per episode with the given weights: sum episodes have labels in {0, 1} only
    assert len(np.unique(border.mean(axis=(1, 2, 3)).round(3))) >= 2
    with pytest.raises(DataError, match="share one input shape"):
        EpisodeSampler(SamplerConfig(datasets=("digits", "random")))


def test_fewshot_omniglot_protocol():
    root = need_real("omniglot/omniglot_background.npz")
    cfg = SamplerConfig(
        datasets=(DatasetSpec("omniglot", "train"),),
        image_size=(28, 28),
        fewshot=FewShotConfig(5, 1, 1),
        data_dir=str(root),
    )
    s = EpisodeSampler(cfg)
    xs, ys = s.sample(KEY, 32)
    assert xs.shape == (32, 6, 1, 28, 28, 1) and s.num_classes == 5 and s.query_steps == 1
    y = np.asarray(ys[:, :, 0])
    assert all(sorted(row[:5]) == [0, 1, 2, 3, 4] for row in y)  # one labelled example per class
    x = np.asarray(xs[:, :, 0]).reshape(32, 6, -1)
    for e in range(32):  # the query is a different drawing than its class's support example
        support = x[e, list(y[e, :5]).index(y[e, 5])]
        assert not np.allclose(support, x[e, 5])
    k = EpisodeSampler(SamplerConfig(datasets=("digits",), fewshot=FewShotConfig(3, 4, 2)))
    xs, ys = k.sample(KEY, 4)
    assert xs.shape[1] == 14 and all(
        np.bincount(r[:12], minlength=3).tolist() == [4, 4, 4] for r in np.asarray(ys[:, :, 0])
    )


def test_split_errors_and_holdout():
    root = need_real("emnist/emnist-mnist-test-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="Available here: test"):
        EpisodeSampler(SamplerConfig(datasets=(DatasetSpec("emnist/mnist", "train"),), data_dir=str(root)))
    a = EpisodeSampler(
        SamplerConfig(datasets=(DatasetSpec("emnist/mnist", "test[:80%]"),), steps=5, data_dir=str(root))
    )
    b = EpisodeSampler(
        SamplerConfig(datasets=(DatasetSpec("emnist/mnist", "test[80%:]"),), steps=5, data_dir=str(root))
    )
    assert a.tables.data.shape[0] == 8000 and b.tables.data.shape[0] == 2000
    ra = {bytes(r) for r in np.asarray(a.tables.data).reshape(8000, -1)}
    assert not any(bytes(r) in ra for r in np.asarray(b.tables.data).reshape(2000, -1)[:500])


def test_config_validation():
    with pytest.raises(DataError, match="unknown dataset"):
        EpisodeSampler(SamplerConfig(datasets=("mnsit",)))
    with pytest.raises(DataError, match="has 2 classes"):
        EpisodeSampler(SamplerConfig(datasets=("sum",), num_classes=5))
    with pytest.raises(DataError, match="ways\\*shots\\+queries"):
        SamplerConfig(fewshot=FewShotConfig(5, 1, 1), steps=10)
    with pytest.raises(DataError, match="projection_dim"):
        SamplerConfig(projection_dim=10)
    cfg = from_dict(
        SamplerConfig, {"datasets": ["digits", {"name": "random", "weight": 2.0}], "steps": 7, "image_size": [8, 8]}
    )
    assert cfg.datasets[0] == DatasetSpec("digits") and cfg.datasets[1].weight == 2.0
    with pytest.raises(ConfigError):
        from_dict(SamplerConfig, {"projection": "sometimes"})


def test_input_scale_is_one_factor_per_episode():
    base = SamplerConfig(datasets=("digits",), steps=20, flatten=True)
    xs, ys = EpisodeSampler(base).sample(KEY, 4)
    xs2, ys2 = EpisodeSampler(dataclasses.replace(base, input_scale=(0.1, 10.0))).sample(KEY, 4)
    np.testing.assert_array_equal(ys, ys2)  # same examples
    big = np.abs(np.asarray(xs)) > 0.5
    ratio = np.asarray(xs2)[big] / np.asarray(xs)[big]
    per_episode = [np.unique(np.round(r, 4)) for r in np.split(ratio, np.cumsum(big.reshape(4, -1).sum(1))[:-1])]
    assert all(len(u) == 1 and 0.1 <= u[0] <= 10.0 for u in per_episode)
    assert len({float(u[0]) for u in per_episode}) == 4
    with pytest.raises(DataError, match="input_scale"):
        SamplerConfig(input_scale=(2.0, 1.0))
