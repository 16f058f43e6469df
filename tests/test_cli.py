"""The command line's one error policy and its defaults' one home (the options dataclasses)."""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests._reports_fixtures import one_line_error
from vton.cli import PREPARE_RUNNER, main
from vton.core.runner import RunnerConfig
from vton.models.options import InferOptions, TrainOptions
from vton.pipelines.keypoints.pifpaf import PifpafOptions
from vton.pipelines.prepare import PrepareOptions
from vton.studies.analyze import analyze_results
from vton.studies.app import Settings
from vton.studies.export import export_study
from vton.studies.options import AnalyzeOptions, ExportOptions, ServeOptions
from vton.studies.serve import StudyServer
from vton.workflows.demo import DemoOptions


def bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """Per command, arguments that click accepts but the command cannot use (paths made under ``tmp``)."""
    empty, full, junk = tmp / "empty", tmp / "full", tmp / "junk.pth"
    empty.mkdir(), full.mkdir()
    (full / "something").write_text("not a vton folder")
    junk.write_bytes(b"not a checkpoint")
    return {
        "synth": ["synth", str(full), "--pairs", "2"],
        "prepare": ["prepare", str(empty), str(tmp / "prep")],
        "audit": ["audit", str(empty), "--out", str(tmp / "audit")],
        "train gmm": ["train", "gmm", str(empty), "--out", str(tmp / "gmm"), "--workers", "0"],
        "train tom": ["train", "tom", str(empty), "--out", str(tmp / "tom"), "--gmm", str(junk)],
        "checkpoint inspect": ["checkpoint", "inspect", str(junk)],
        "infer": ["infer", str(empty), "--checkpoint", str(junk), "--out", str(tmp / "inf")],
        "evaluate": ["evaluate", str(empty), "--results", str(empty), "--out", str(tmp / "eval")],
        "keypoints": ["keypoints", str(empty), str(tmp / "kp"), "--pose-checkpoint", str(tmp / "absent.pkl")],
        "report": ["report", str(empty)],
        "amt export": ["amt", "export", "--a", str(empty), "--b", str(empty), "--base-url", "https://x/",
                       "--out", str(tmp / "study")],
        "amt analyze": ["amt", "analyze", str(junk), "--key", str(junk)],
        "study export": ["study", "export", "--run", str(empty), "--run", str(empty), "--base-url", "https://x/",
                         "--out", str(tmp / "study")],
        "study serve": ["study", "serve", str(empty)],
        "study results": ["study", "results", str(empty)],
        "demo": ["demo", "--out", str(full)],
        "weights list": ["weights", "list", "no-such-file"],
        "weights download": ["weights", "download", "--for", "no-such-command"],
        "weights verify": ["weights", "verify", "alexnet", "--for", "evaluate"],
        "weights import": ["weights", "import", str(junk)],
    }


def leaves(group: click.Group, prefix: str = "") -> list[str]:
    """Every command's full name, e.g. "train gmm"."""
    names = []
    for name, command in group.commands.items():
        names += leaves(command, f"{prefix}{name} ") if isinstance(command, click.Group) else [prefix + name]
    return names


def test_every_command_is_fed_a_bad_input_here(tmp_path: Path) -> None:
    assert set(bad_inputs(tmp_path)) == set(leaves(main))


@pytest.mark.parametrize("command", leaves(main))
def test_bad_input_is_one_line_and_exit_1(command: str, tmp_path: Path) -> None:
    args = bad_inputs(tmp_path)[command]
    message = one_line_error(CliRunner().invoke(main, args))
    assert "Traceback" not in message


def option_defaults(*names: str) -> dict[str, object]:
    """The default of each named option of the command ``names``, by parameter name."""
    command = main
    for name in names:
        command = command.commands[name]
    return {p.name: p.default for p in command.params if isinstance(p, click.Option) and not p.is_flag}


def dataclass_defaults(options: object) -> dict[str, object]:
    if isinstance(options, type):
        return {f.name: f.default for f in dataclasses.fields(options)}
    return dataclasses.asdict(options)


@pytest.mark.parametrize(("command", "options", "renamed"), [
    (("train", "gmm"), TrainOptions, {}),
    (("train", "tom"), TrainOptions, {}),
    (("infer",), InferOptions, {}),
    (("prepare",), PrepareOptions, {}),
    (("prepare",), PREPARE_RUNNER, {}),
    (("prepare",), PifpafOptions, {"pose_threshold": "threshold", "pose_device": "device",
                                   "pose_checkpoint": "checkpoint"}),
    (("keypoints",), PifpafOptions, {"pose_checkpoint": "checkpoint"}),
    (("keypoints",), RunnerConfig, {}),
    (("demo",), DemoOptions, {"steps": "gmm_steps"}),
    (("amt", "export"), ExportOptions, {}),
    (("study", "export"), ExportOptions, {}),
    (("amt", "analyze"), AnalyzeOptions, {}),
    (("study", "serve"), ServeOptions, {}),
])
def test_option_defaults_are_the_dataclass_defaults(command: tuple[str, ...], options: object,
                                                    renamed: dict[str, str]) -> None:
    """Each option named like a field of the dataclass the command fills has that field's default."""
    expected = dataclass_defaults(options)
    shared = {name: renamed.get(name, name) for name in option_defaults(*command)}
    shared = {name: field for name, field in shared.items() if field in expected}
    assert shared, "the command fills none of this dataclass's fields"
    for name, field in shared.items():
        assert option_defaults(*command)[name] == expected[field], (command, name)


@pytest.mark.parametrize(("functions", "options"), [
    ((export_study,), ExportOptions), ((analyze_results,), AnalyzeOptions), ((StudyServer, Settings), ServeOptions),
])
def test_study_functions_default_to_the_options(functions, options) -> None:
    """The study functions called from Python get the same defaults as the CLI: both read the options dataclass."""
    expected = dataclass_defaults(options)
    params = {k: v for f in functions for k, v in inspect.signature(f).parameters.items()}
    assert {name: params[name].default for name in expected} == expected
