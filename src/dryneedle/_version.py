"""The library version, in one place (read by hatchling and by :mod:`dryneedle`).

Layer: the lowest. Imports nothing.
"""

__version__ = "0.1.0"
