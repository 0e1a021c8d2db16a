"""dryneedle: typed, cited clinical rules for dry needling."""

from dryneedle._version import __version__

__all__ = ["__version__"]
