"""Policies: cited limits, overrides with justification, fingerprints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dryneedle.findings import Effect, Severity
from dryneedle.policy import (
    DEFAULT_POLICY,
    GUIDELINE_POLICY,
    POLICIES,
    Policy,
    get_policy,
    load_policy,
)
from dryneedle.sources import SOURCES


def test_every_limit_is_cited_with_known_sources_and_a_unit() -> None:
    """Each numeric limit names its unit and at least one registered source."""
    limits = DEFAULT_POLICY.limits()
    assert len(limits) >= 14
    for lim in limits:
        assert lim.sources, lim.name
        assert all(s in SOURCES for s in lim.sources), lim.name
        assert lim.unit
        assert lim.value == lim.default


def test_clinic_policy_defaults_say_so() -> None:
    """A limit whose only basis is clinic policy says 'Clinic policy default' in its docs."""
    for lim in DEFAULT_POLICY.limits():
        if lim.sources == ("policy",):
            assert "Clinic policy default" in lim.doc, lim.name


def test_seed_limits_have_the_seed_values() -> None:
    """The default policy carries the seed's numbers (SPEC §3, §4)."""
    p = DEFAULT_POLICY
    assert (p.min_age_years, p.recent_surgery_days) == (12, 90)
    assert (p.superficial_min_depth_mm, p.superficial_max_depth_mm) == (5.0, 10.0)
    assert (p.dwell_min_s, p.dwell_max_s) == (2.0, 1200.0)
    assert p.first_session_max_needles == 2
    assert p.over_lung_max_depth_mm == 31.0


def test_override_records_changes_and_changes_the_fingerprint() -> None:
    """Overrides need a justification, are recorded, and change the fingerprint."""
    p = DEFAULT_POLICY.override(limits={"recent_surgery_days": 180}, justification="Audit 2026",
                                name="clinic")
    assert p.recent_surgery_days == 180
    assert isinstance(p.recent_surgery_days, int)
    assert p.fingerprint != DEFAULT_POLICY.fingerprint
    assert [(c.what, c.old, c.new, c.justification) for c in p.changes] == [
        ("recent_surgery_days", 90, 180, "Audit 2026")
    ]
    q = p.override(rules={"screening.diabetes": {"severity": "info"}}, justification="x")
    assert q.severity_of("screening.diabetes", Severity.WARNING) is Severity.INFO
    assert q.fingerprint not in (p.fingerprint, DEFAULT_POLICY.fingerprint)
    with pytest.raises(ValueError, match="justification"):
        DEFAULT_POLICY.override(limits={"min_age_years": 10}, justification="  ")
    with pytest.raises(ValueError, match="unknown policy limit"):
        DEFAULT_POLICY.override(limits={"max_fun": 1}, justification="x")
    with pytest.raises(ValueError, match="number"):
        DEFAULT_POLICY.override(limits={"min_age_years": True}, justification="x")
    with pytest.raises(KeyError):
        DEFAULT_POLICY.override(rules={"screening.nope": {"severity": "info"}}, justification="x")
    with pytest.raises(ValueError, match="fatal"):
        DEFAULT_POLICY.override(rules={"screening.diabetes": {"severity": "fatal"}},
                                justification="x")


def test_fingerprint_depends_on_content_not_on_identity_or_process() -> None:
    """Equal content gives equal fingerprints, also in another interpreter."""
    a = Policy(name="x", min_age_years=14)
    b = Policy(name="x", min_age_years=14)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != Policy(name="x").fingerprint
    code = "from dryneedle.policy import GUIDELINE_POLICY as p; print(p.fingerprint)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == GUIDELINE_POLICY.fingerprint


def test_guideline_policy_is_cited_and_differs_where_spec_says() -> None:
    """The guideline policy relaxes exactly the rules SPEC §3 names, each with sources."""
    overridden = {o.rule_id: o for o in GUIDELINE_POLICY.rule_overrides}
    assert set(overridden) == {
        "screening.bleeding_disorder", "screening.anticoagulant_therapy",
        "screening.immunocompromised", "screening.pregnancy", "screening.age_minimum",
    }
    for o in overridden.values():
        assert o.sources
        assert o.justification
    assert GUIDELINE_POLICY.effect_of("screening.pregnancy", Effect.EXCLUDE) is Effect.REVIEW
    assert GUIDELINE_POLICY.severity_of("screening.pregnancy", Severity.ERROR) is Severity.WARNING
    assert DEFAULT_POLICY.effect_of("screening.pregnancy", Effect.EXCLUDE) is Effect.EXCLUDE


def test_named_and_loaded_policies() -> None:
    """Built-in policies by name; JSON policy files need a justification."""
    assert get_policy("default") is DEFAULT_POLICY
    assert set(POLICIES) == {"default", "guideline"}
    p = load_policy({"base": "guideline", "name": "c", "justification": "j",
                     "rules": {"screening.epilepsy": {"effect": "exclude"}}})
    assert p.effect_of("screening.epilepsy", Effect.PRECAUTION) is Effect.EXCLUDE
    assert p.severity_of("screening.epilepsy", Severity.WARNING) is Severity.ERROR
    assert p.as_dict()["rule_overrides"][-1]["rule_id"] == "screening.epilepsy"
    with pytest.raises(ValueError, match="justification"):
        load_policy({"limits": {"min_age_years": 13}})
    with pytest.raises(ValueError, match="unknown policy keys"):
        load_policy({"justification": "x", "colour": "red"})
    with pytest.raises(KeyError):
        load_policy({"base": "lenient", "justification": "x"})
