"""vton: reproduce and benchmark CP-VTON on VITON-format data."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("vton")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
