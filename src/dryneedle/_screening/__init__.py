"""Private implementation of :mod:`dryneedle.screening`; import the public names from there.

Modules, lowest first (each may import only the ones before it, plus the model, reference data,
findings and policy): ``rules`` (every screening rule and the per-policy table) and ``sites``
(the site rules). The screen itself is in :mod:`dryneedle.screening`.
"""
