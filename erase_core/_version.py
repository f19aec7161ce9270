"""The installed version of ERASE: one source of truth, the ``erase-icl`` distribution metadata.

``pyproject.toml`` sets the version; every package reports it as ``__version__``. A source tree
imported without being installed has no metadata and reports ``0+unknown``.
"""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "erase-icl"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
