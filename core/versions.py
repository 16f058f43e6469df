"""Versions of vton and the libraries a run used, recorded beside its results."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    VTON_VERSION = _version("vton")
except PackageNotFoundError:  # running from a source tree that was not installed
    VTON_VERSION = "0.0.0+src"


def library_versions(*dists: str) -> dict[str, str]:
    """Python, vton and the given distributions' versions ("absent" when not installed), for run records."""
    import platform

    found = {"python": platform.python_version(), "vton": VTON_VERSION}
    for dist in dists:
        try:
            found[dist] = _version(dist)
        except PackageNotFoundError:
            found[dist] = "absent"
    return found
