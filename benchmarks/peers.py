"""Shape-only models of record format v1 for the peer libraries (pydantic v2, msgspec).

They check what a schema library can check: JSON types, required fields, closed vocabularies
(enums, muscle and condition ids), ISO dates, non-empty identifiers and simple bounds. None of
the clinical rules. They are *equivalent* to dryneedle's own ``structure`` check on validity:

* types are strict, as in record format v1: ``"15"`` is not a number, ``"yes"`` is not a
  boolean, ``1.0`` is not an integer (pydantic runs in strict mode; msgspec is strict by
  default), and numbers must be finite (``allow_inf_nan=False``);
* every vocabulary is taken from the dryneedle model enums and catalogs, so the peers cannot
  drift from the format;
* unknown fields are accepted (dryneedle reports them as warnings, not errors).

``benchmarks/run.py`` checks, before timing, that all three agree record by record on which
generated records are valid (``peer_agreement`` in its JSON output).

No ``from __future__ import annotations`` here: both libraries resolve the annotations of the
classes defined inside the factory functions at class-creation time.
"""

import datetime as dt
import enum
from typing import Annotated, Any, Literal

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES

__all__ = ["CONDITION_IDS", "MUSCLE_IDS", "msgspec_decoder", "pydantic_model"]

MUSCLE_IDS = tuple(MUSCLES)
CONDITION_IDS = tuple(CONDITIONS)


def _values(cls: type[enum.Enum]) -> tuple[str, ...]:
    return tuple(str(m.value) for m in cls)


# ``Literal[("a", "b")]`` is ``Literal["a", "b"]``: the closed vocabularies of the format.
Sex: Any = Literal[_values(model.Sex)]
Pregnancy: Any = Literal[_values(model.Pregnancy)]
Phobia: Any = Literal[_values(model.NeedlePhobia)]
Region: Any = Literal[_values(model.Region)]
SiteSide: Any = Literal[_values(model.SiteSide)]
SiteKind: Any = Literal[_values(model.SiteFindingKind)]
Side: Any = Literal[_values(model.Side)]
Technique: Any = Literal[_values(model.Technique)]
Manipulation: Any = Literal[_values(model.Manipulation)]
EventKind: Any = Literal[_values(model.AdverseEventKind)]
EventGrade: Any = Literal[_values(model.AdverseEventGrade)]
Muscle: Any = Literal[MUSCLE_IDS]
Condition: Any = Literal[CONDITION_IDS]
Format: Any = Literal["dryneedle.session/1"]


def pydantic_model() -> Any:
    """Return the pydantic v2 model class of a record (shape only, strict types)."""
    from pydantic import BaseModel, ConfigDict, Field  # noqa: PLC0415

    class M(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    NonEmpty = Annotated[str, Field(min_length=1)]  # noqa: N806

    class History(M):
        bleeding_disorder: bool | None = None
        anticoagulant_therapy: bool | None = None
        immunocompromised: bool | None = None
        metal_allergy: bool | None = None
        epilepsy: bool | None = None
        diabetes: bool | None = None
        vascular_disease: bool | None = None
        prior_adverse_reaction: bool | None = None
        acute_illness: bool | None = None
        lymph_node_removal: bool | None = None
        needle_phobia: Phobia | None = None
        consent: bool | None = None

    class SiteFinding(M):
        region: Region
        side: SiteSide
        kind: SiteKind
        date: dt.date | None = None

    class Patient(M):
        patient_id: NonEmpty
        birth_date: dt.date | None = None
        sex: Sex | None = None
        pregnancy: Pregnancy | None = None
        history: History | None = None
        site_findings: list[SiteFinding] | None = None
        conditions: list[Condition] | None = None

    class Practitioner(M):
        practitioner_id: NonEmpty
        dry_needling_trained: bool | None = None

    class Pre(M):
        history_reviewed: bool | None = None
        physical_exam: bool | None = None
        consent: bool | None = None
        skin_disinfected: bool | None = None

    class Post(M):
        needles_removed: Annotated[int, Field(ge=0)] | None = None
        skin_checked: bool | None = None

    class Needle(M):
        diameter_mm: float | None = None
        length_mm: float | None = None

    class Insertion(M):
        muscle: Muscle
        side: Side
        technique: Technique
        depth_mm: float | None = None
        manipulation: Manipulation
        dwell_s: float | None = None
        needle: Needle | None = None
        guide_tube: bool | None = None
        twitch_response: bool | None = None
        ultrasound_guided: bool | None = None

    class AdverseEvent(M):
        kind: EventKind
        grade: EventGrade | None = None

    class Session(M):
        session_id: NonEmpty
        date: dt.date
        number: Annotated[int, Field(ge=1)]
        practitioner: Practitioner
        pre: Pre | None = None
        insertions: list[Insertion] | None = None
        post: Post | None = None
        adverse_events: list[AdverseEvent] | None = None

    class Record(M):
        format: Format
        record_id: NonEmpty
        patient: Patient
        session: Session

    return Record


def msgspec_decoder() -> Any:
    """Return a msgspec JSON decoder for a record (shape only, with constraints)."""
    import msgspec  # noqa: PLC0415

    NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]  # noqa: N806

    class History(msgspec.Struct):
        bleeding_disorder: bool | None = None
        anticoagulant_therapy: bool | None = None
        immunocompromised: bool | None = None
        metal_allergy: bool | None = None
        epilepsy: bool | None = None
        diabetes: bool | None = None
        vascular_disease: bool | None = None
        prior_adverse_reaction: bool | None = None
        acute_illness: bool | None = None
        lymph_node_removal: bool | None = None
        needle_phobia: Phobia | None = None
        consent: bool | None = None

    class SiteFinding(msgspec.Struct):
        region: Region
        side: SiteSide
        kind: SiteKind
        date: dt.date | None = None

    class Patient(msgspec.Struct):
        patient_id: NonEmpty
        birth_date: dt.date | None = None
        sex: Sex | None = None
        pregnancy: Pregnancy | None = None
        history: History | None = None
        site_findings: list[SiteFinding] | None = None
        conditions: list[Condition] | None = None

    class Practitioner(msgspec.Struct):
        practitioner_id: NonEmpty
        dry_needling_trained: bool | None = None

    class Pre(msgspec.Struct):
        history_reviewed: bool | None = None
        physical_exam: bool | None = None
        consent: bool | None = None
        skin_disinfected: bool | None = None

    class Post(msgspec.Struct):
        needles_removed: Annotated[int, msgspec.Meta(ge=0)] | None = None
        skin_checked: bool | None = None

    class Needle(msgspec.Struct):
        diameter_mm: float | None = None
        length_mm: float | None = None

    class Insertion(msgspec.Struct, kw_only=True):  # fields in format order
        muscle: Muscle
        side: Side
        technique: Technique
        depth_mm: float | None = None
        manipulation: Manipulation
        dwell_s: float | None = None
        needle: Needle | None = None
        guide_tube: bool | None = None
        twitch_response: bool | None = None
        ultrasound_guided: bool | None = None

    class AdverseEvent(msgspec.Struct):
        kind: EventKind
        grade: EventGrade | None = None

    class Session(msgspec.Struct):
        session_id: NonEmpty
        date: dt.date
        number: Annotated[int, msgspec.Meta(ge=1)]
        practitioner: Practitioner
        pre: Pre | None = None
        insertions: list[Insertion] | None = None
        post: Post | None = None
        adverse_events: list[AdverseEvent] | None = None

    class Record(msgspec.Struct):
        format: Format
        record_id: NonEmpty
        patient: Patient
        session: Session

    return msgspec.json.Decoder(Record)
