"""The library version, in one place (read by hatchling and by :mod:`dryneedle`)."""

__version__ = "0.1.0"
