"""Input contracts of learned LAs: recorded by meta-training, read from old LAs, applied or refused
(with the option that fixes it) by evaluate / introspect, checked by vsml.online."""

import argparse
import json

import numpy as np
import pytest
from _meta_support import tiny_config

import vsml
from vsml import contract
from vsml.learners.base import InputError
from vsml.meta.trainer import MetaTrainer, meta_config_from_dict


def test_shipped_meta_mnist_contract_is_read_from_its_old_record():
    c = contract.of_learner("meta_mnist")
    assert c.image_size == (14, 14) and c.grayscale and c.normalize and c.input_features == 196
    assert contract.of_learner("cloned_sgd_1layer") is None  # cloned on random streams: any input


def test_apply_fills_open_options_and_refuses_contradicting_ones():
    c = contract.of_learner("meta_mnist", owner="meta_mnist")
    add, notes = contract.apply(c, {})
    assert add == {"image_size": [14, 14]} and "--resize 14" in notes[0]  # defaults (grayscale, normalize) need nothing
    with pytest.raises(contract.ContractError, match=r"--resize 28: use --resize 14 .*--ignore-contract"):
        contract.apply(c, {"image_size": 28})
    with pytest.raises(contract.ContractError, match="--sampler normalize=true"):
        contract.apply(c, {"normalize": False})
    with pytest.raises(contract.ContractError, match="--resize 14"):
        contract.check_features(c, (28, 28, 1))
    other = contract.InputContract((8, 8), True, True, 64, "digits_la")
    with pytest.raises(contract.ContractError, match="need different inputs"):
        contract.merge([c, other])


def test_online_checks_the_input_shape():
    with pytest.raises(InputError, match=r"expects 196 input values.*input_shape=\(14, 14\)"):
        vsml.online("meta_mnist", input_shape=(28, 28), num_classes=10)
    model = vsml.online("meta_mnist", input_shape=(196,), num_classes=10)
    assert model.learn(np.zeros(196, np.float32), 3).shape == (10,)
    vsml.online("meta_mnist", input_shape=(28, 28), num_classes=10, ignore_contract=True)


def test_meta_training_records_the_contract_and_evaluate_applies_it(tmp_path, capsys):
    from vsml.eval import cli as ev_cli

    run = tmp_path / "run"
    MetaTrainer(meta_config_from_dict(tiny_config(run, iterations=1)), log=lambda m: None).run()
    c = contract.of_learner(run)
    assert c.input_features == 64 and c.image_size is None and c.grayscale and c.normalize
    with pytest.raises(InputError, match=r"expects 64 input values.*input_shape=\(64,\)"):
        vsml.online(str(run / "learner.npz"), input_shape=(5,), num_classes=3)

    parser = argparse.ArgumentParser()
    ev_cli.register(parser.add_subparsers(dest="command"))

    def evaluate(*argv):
        args = parser.parse_args(
            [
                "evaluate",
                "--checkpoint",
                "meta_mnist",
                "-d",
                "digits",
                "-n",
                "1",
                "-T",
                "5",
                "--no-progress",
                "--no-plot",
                *argv,
            ]
        )
        return args.func(args)

    assert evaluate("-o", str(tmp_path / "a"), "--json", str(tmp_path / "a.json")) == 0
    out = capsys.readouterr()
    assert "applying the input contract of --checkpoint meta_mnist" in out.err and "--resize 14" in out.err
    assert "± n/a" in (tmp_path / "a" / "table.md").read_text()  # one episode: no interval
    # the JSON records the contract the LA ran under
    assert json.loads((tmp_path / "a.json").read_text())["meta"]["options"]["contract"]["image_size"] == [14, 14]
    assert evaluate("--resize", "8", "-o", str(tmp_path / "b")) == 2
    assert "use --resize 14" in capsys.readouterr().err
    assert evaluate("--resize", "8", "--ignore-contract", "-o", str(tmp_path / "c")) == 0
    assert evaluate("--checkpoint", str(run), "-o", str(tmp_path / "d")) == 2  # 14x14 vs 64 values
    assert "need different inputs" in capsys.readouterr().err
