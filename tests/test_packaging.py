"""The installed package: setuptools installs only the sub-packages pyproject lists, so one left out is missing
from a wheel although every test passes from the checkout."""
from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT_ONLY = {"tests", "bench"}  # packages of the checkout, never installed
BUILT = {"build", "dist"}  # what a local `pip wheel` / `python -m build` leaves (git-ignored)


def test_every_subpackage_is_listed_for_setuptools() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {".".join(("vton", *init.parent.relative_to(ROOT).parts)) for init in ROOT.rglob("__init__.py")
             if not {*CHECKOUT_ONLY, *BUILT} & set(parts := init.relative_to(ROOT).parts)
             and not any(p.startswith(".") for p in parts)}
    assert sorted(listed) == sorted(found)
