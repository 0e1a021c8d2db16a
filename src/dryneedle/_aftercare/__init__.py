"""Private implementation of :mod:`dryneedle.aftercare`; import the public names from there.

Modules, lowest first (each may import only the ones before it, plus the model, reference data,
findings and policy): ``plan`` (expected course and instructions), ``report`` (the symptom
report), ``triage`` (triage rules) and ``events`` (adverse-event vocabulary and rates, which
needs none of the others).
"""
