"""Private implementation of :mod:`dryneedle.protocol`; import the public names from there.

Modules, lowest first (each may import only the ones before it, plus the model, reference data,
findings, policy and screening): ``rules`` (every protocol and series rule and the per-policy
table), ``session`` (per-session checks) and ``series`` (series checks).
"""
