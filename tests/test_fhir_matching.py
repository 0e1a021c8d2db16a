"""Code matching compiled once (:class:`CodePatterns`) answers as :func:`code_matches` does.

The FHIR mapping matches each ICD-10-CM coding against the catalog's codes through patterns
compiled at import, a coding normalised once; these properties check that the answer is the
one :func:`code_matches` gives pattern by pattern, on random codes and patterns (ranges,
prefixes, dots, case, spaces, empty and dash-only patterns) and on the catalog's own codes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle.catalog import CONDITIONS
from dryneedle.fhir import _mapper
from dryneedle.fhir._terminology import CodePatterns, code_matches, match_flags

_CHARS = "ADGMSXZ0159.- "
_code = st.text(_CHARS, max_size=8)
_pattern = st.one_of(
    st.text(_CHARS, max_size=8),
    st.builds(lambda a, b: f"{a}-{b}", st.text("ADGZ0159.", max_size=4),
              st.text("ADGZ0159.", max_size=4)),
)


@settings(max_examples=500)
@given(code=_code, patterns=st.lists(_pattern, max_size=5))
def test_compiled_patterns_match_as_code_matches(code: str, patterns: list[str]) -> None:
    expected = any(code_matches(code, p) for p in patterns)
    compiled = CodePatterns(patterns)
    assert compiled.matches(code) == expected
    assert compiled.matches_normalised(CodePatterns.normalise(code)) == expected


_catalog_codes = sorted({c for cond in CONDITIONS.values() for c in cond.all_codes()})


@settings(max_examples=300)
@given(base=st.sampled_from(_catalog_codes or ["M79.1"]), cut=st.integers(0, 8),
       tail=st.text("0159AX.", max_size=3), lower=st.booleans())
def test_the_catalog_index_matches_as_the_catalog_loop(base: str, cut: int, tail: str,
                                                      lower: bool) -> None:
    """Codes near the catalog's (cut, extended, lower case): same conditions, same order."""
    code = base[:cut] + tail
    code = code.lower() if lower else code
    loop = [cond.id for cond in CONDITIONS.values()
            if any(code_matches(code, p) for p in cond.all_codes())]
    index = [cond.id for cond, patterns in _mapper._CATALOG_CODES
             if patterns.matches_normalised(CodePatterns.normalise(code))]
    assert index == loop


def test_match_flags_is_unchanged_on_ranges_and_prefixes() -> None:
    table = {"bleeding_disorder": {"s": ["D65-D69"]}, "epilepsy": {"s": ["G40", ""]}}
    codings = [("s", "d68.51"), ("s", "G40.909"), ("t", "G40"), (None, "D66"), ("s", "D70")]
    assert match_flags(codings, table) == [
        ("bleeding_disorder", "s", "d68.51"), ("epilepsy", "s", "G40.909")]
