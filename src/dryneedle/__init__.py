"""dryneedle: typed, cited clinical rules for dry needling.

Layer: the package root. Imports only ``dryneedle._version`` (every other module is
imported by name, so ``import dryneedle`` stays light).
"""

from dryneedle._version import __version__

__all__ = ["__version__"]
