"""One exception base, one "did you mean", one way a command reports an error (vsml.errors)."""

import signal

import pytest

from vsml import errors, runs
from vsml.errors import VSMLError, did_you_mean


def test_every_expected_error_derives_from_the_base_and_keeps_its_builtin_base():
    from vsml.artifacts import ArtifactError
    from vsml.checkpoint import CheckpointError
    from vsml.cloning.clone import CloningError
    from vsml.config import ConfigError
    from vsml.contract import ContractError
    from vsml.data.integrity import DataError
    from vsml.eval.commands import CommandError
    from vsml.eval.evaluate import EvalError
    from vsml.eval.figures import FigureError
    from vsml.kernels.dense import KernelUnavailableError
    from vsml.learners.base import InputError
    from vsml.meta.distributed import DistributedError, PeerLostError
    from vsml.meta.trainer import MetaTrainingError
    from vsml.pretrained import PretrainedError

    for cls, builtin in [
        (ConfigError, ValueError),
        (ArtifactError, ValueError),
        (CheckpointError, ValueError),
        (PretrainedError, ValueError),
        (DataError, ValueError),
        (InputError, ValueError),
        (ContractError, ValueError),
        (EvalError, ValueError),
        (FigureError, ValueError),
        (CommandError, ValueError),
        (CloningError, FloatingPointError),
        (runs.RunLockError, RuntimeError),
        (runs.OutputError, RuntimeError),
        (MetaTrainingError, RuntimeError),
        (DistributedError, RuntimeError),
        (KernelUnavailableError, RuntimeError),
    ]:
        assert issubclass(cls, VSMLError) and issubclass(cls, builtin), cls
    assert PeerLostError("x").exit_code == 75 and ConfigError("x").exit_code == 2
    assert issubclass(runs.StopRequested, VSMLError)


def test_did_you_mean():
    assert did_you_mean("vsmll", ["sgd", "vsml", "adam"]) == "vsml"
    assert did_you_mean("zzz", ["sgd", "vsml"]) is None
    assert did_you_mean("MNSIT", ["mnist", "Omniglot"], ignore_case=True) == "mnist"
    assert did_you_mean("omniglott", ["mnist", "Omniglot"], ignore_case=True) == "Omniglot"  # keeps the option's case
    assert did_you_mean("MNSIT", ["mnist"]) is None  # case matters unless ignore_case


def test_a_command_reports_errors_as_one_line_and_an_exit_code(capsys):
    from vsml.config import ConfigError

    def fails(error):
        @errors.command(lambda args: f"vsml {args}")
        def cmd(args):
            raise error

        return cmd

    assert fails(ConfigError("bad key 'x'"))("thing") == 2
    assert capsys.readouterr().err == "vsml thing: error: bad key 'x'\n"
    assert fails(FileNotFoundError(2, "No such file or directory", "c.yaml"))("t") == 2
    assert "vsml t: error: [Errno 2] No such file or directory: 'c.yaml'" in capsys.readouterr().err
    stop = runs.StopRequested(signal.SIGTERM, 4, None, "cloning", resume="vsml clone --resume")
    assert fails(stop)("clone") == 143
    assert capsys.readouterr().err == (
        "vsml clone: cloning stopped by SIGTERM after iteration 4; continue with: vsml clone --resume\n"
    )
    assert fails(KeyboardInterrupt())("x") == 130
    with pytest.raises(ZeroDivisionError):  # a bug is not an expected error: its traceback is shown
        fails(ZeroDivisionError())("x")
    seen = []

    @errors.command("vsml y", on_exit=lambda code, line, e: seen.append((code, line)))
    def cmd(args):
        raise VSMLError("stop here")

    assert cmd(None) == 2 and seen == [(2, "vsml y: error: stop here")]
