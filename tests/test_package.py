"""The package installs as `vton` alone and its CLI answers."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

import vton
from vton.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_help_list_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert vton.__version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert name in result.output


def test_wheel_puts_nothing_but_vton_at_top_level(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("vton-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == {"vton"}
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("pipelines", "models", "eval", "reports"):
        assert f"vton/{sub}/__init__.py" in names
    assert "vton/cli.py" in names


def test_atomic_write_gives_ordinary_permissions(tmp_path: Path) -> None:
    import os

    from vton.core.io import atomic_write_bytes

    atomic_write_bytes(tmp_path / "a.bin", b"x")
    with open(tmp_path / "b.bin", "wb") as fh:
        fh.write(b"x")
    assert os.stat(tmp_path / "a.bin").st_mode == os.stat(tmp_path / "b.bin").st_mode
    assert not list(tmp_path.glob(".*.tmp"))


def test_safe_join_refuses_climbing_out_but_follows_the_owners_links(tmp_path: Path) -> None:
    import pytest

    from vton.core.io import UnsafePathError, safe_join

    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir(), elsewhere.mkdir()
    (root / "test").symlink_to(elsewhere)  # a split folder linked in from another disk
    assert safe_join(root, "test/image/a.jpg") == root / "test" / "image" / "a.jpg"
    assert safe_join(root, "test/../test/x.jpg") == root / "test" / "x.jpg"
    for bad in ("../elsewhere/x.jpg", "test/../../x", "/etc/passwd", "", "a\x00b"):
        with pytest.raises(UnsafePathError):
            safe_join(root, bad)
