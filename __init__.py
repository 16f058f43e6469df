"""vton: reproduce and benchmark CP-VTON on VITON-format data."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("vton")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"


def library_versions(*dists: str) -> dict[str, str]:
    """Python, vton and the given distributions' versions ("absent" when not installed), for run records."""
    import platform

    found = {"python": platform.python_version(), "vton": __version__}
    for dist in dists:
        try:
            found[dist] = _version(dist)
        except PackageNotFoundError:
            found[dist] = "absent"
    return found
