"""Datasets and episodes: canonical files (verified, offline), built-in data, your own data, preprocessing, sampling.

from vsml.data import load, EpisodeSampler, SamplerConfig
split = load("mnist", "train")                       # images [60000, 28, 28, 1] uint8, labels [60000]
split = load("path/to/my_data.npz", "test")          # your own .npz / .csv / folder of class folders
sampler = EpisodeSampler(SamplerConfig(datasets=("mnist",), steps=500))
xs, ys = sampler.sample(key, 128)                    # [128, 500, 1, 28, 28, 1], [128, 500, 1]
"""

from vsml.data.download import download as download_dataset
from vsml.data.episodes import (
    DatasetSpec,
    Episodes,
    EpisodeSampler,
    EpisodeTask,
    FewShotConfig,
    SamplerConfig,
    draw_episodes,
    episodes_key,
)
from vsml.data.integrity import DataError, FileSpec
from vsml.data.integrity import forget_fingerprint as forget
from vsml.data.registry import (
    REGISTRY,
    DatasetInfo,
    Source,
    Split,
    data_dir,
    get_info,
    load,
    names,
    register,
    register_file,
    status,
    unregister,
)

__all__ = [
    "DataError",
    "DatasetInfo",
    "DatasetSpec",
    "EpisodeSampler",
    "Episodes",
    "EpisodeTask",
    "FewShotConfig",
    "FileSpec",
    "REGISTRY",
    "SamplerConfig",
    "Source",
    "Split",
    "data_dir",
    "download_dataset",
    "draw_episodes",
    "episodes_key",
    "forget",
    "get_info",
    "load",
    "names",
    "register",
    "register_file",
    "status",
    "unregister",
]
