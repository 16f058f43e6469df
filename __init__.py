"""vton: reproduce and benchmark CP-VTON, and evaluate any try-on method under recorded protocols."""
from vton.core.versions import VTON_VERSION as __version__
from vton.core.versions import library_versions

__all__ = ["__version__", "library_versions"]
