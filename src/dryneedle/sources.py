"""The clinical and technical sources every rule, limit and instruction cites.

This registry mirrors ``SOURCES.md`` of the product specification. Each :class:`Source` has a
stable ``id`` (what findings carry in their ``sources``), a full reference a reader can find, a
grade and a short note of what it supports.

Grades:

* ``P`` -- primary (regulator, statute, standard, guideline text, peer-reviewed paper);
* ``S`` -- secondary (professional-body article, coding reference, legal summary);
* ``C`` -- the product's own clinic-policy default (no external source; always overridable).

>>> from dryneedle.sources import SOURCES, get_source
>>> get_source("za-bn121").grade
'P'
>>> "seed" in SOURCES
True
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = ["SOURCES", "Grade", "Source", "get_source"]

Grade = Literal["P", "S", "C"]
"""A source grade: primary, secondary or clinic-policy consensus."""


@attrs.frozen(kw_only=True)
class Source:
    """One citable source.

    Attributes:
        id: Stable identifier cited by findings, rules and limits.
        reference: Full bibliographic reference.
        grade: ``P`` primary, ``S`` secondary, ``C`` clinic-policy default.
        supports: What the library takes from it.
        url: A link where one is published.
    """

    id: str
    reference: str
    grade: Grade
    supports: str
    url: str | None = None


_ALL = (
    Source(
        id="seed",
        reference=(
            'Empower Fitness, "What Is Dry Needling? Learn the Benefits, Risks and Results" '
            "(the product's founding brief)"
        ),
        grade="S",
        supports=(
            "contraindications (clotting problems, compromised immunity, metal allergy, severe "
            "needle phobia, pregnancy, children under 12); site risks (recent surgery, wounds, "
            "scars, tattoos, injuries); superficial 5-10 mm; deep beyond subcutaneous tissue; "
            "dwell 2 s to 20 min or pistoning; first session 1-2 needles; guide tube; history and "
            "exam before; after-care; side effects; conditions treated; trained professional only; "
            "not anti-inflammatory"
        ),
    ),
    Source(
        id="za-bn121",
        reference=(
            "South Africa, Allied Health Professions Act 1982, Board Notice 121, "
            '"Safety guidelines: dry needling" §3 contra-indications, §4 adverse effects, '
            "§5.1 thorax, §7 hygiene"
        ),
        grade="P",
        supports=(
            "absolute and relative contra-indications; haemostasis by palpation impossible "
            "(psoas, tibialis posterior); pneumothorax risk, 3.1 cm needle reached lung, never "
            "both sides of the thorax in one session; avoid over-needling at first treatment; "
            "fainting management; hygiene"
        ),
        url="https://source.acts.co.za/allied-health-professions-act-1982/bn121_3__contra-indications_to.php",
    ),
    Source(
        id="apta-2013",
        reference=(
            "American Physical Therapy Association, \"Description of Dry Needling in Clinical "
            'Practice: An Educational Resource Paper", 2013 (as quoted in munoz-2022)'
        ),
        grade="P",
        supports=(
            "abnormal bleeding tendency needled with caution; deep non-compressible muscles may "
            "need to be avoided; indications list"
        ),
    ),
    Source(
        id="munoz-2022",
        reference=(
            'Muñoz M, Dommerholt J, et al. "Dry Needling and Antithrombotic Drugs." '
            "Pain Res Manag 2022:1363477"
        ),
        grade="P",
        supports=(
            "antithrombotics are not an absolute contraindication; avoid deep non-compressible "
            "muscles; ultrasound guidance where available"
        ),
        url="https://www.hindawi.com/journals/prm/2022/1363477/",
    ),
    Source(
        id="baldry-2002",
        reference='Baldry P. "Superficial versus deep dry needling." Acupunct Med 2002;20:78-81',
        grade="P",
        supports="superficial technique: 0.3 x 30 mm needle, 5-10 mm depth",
    ),
    Source(
        id="dunning-2021",
        reference=(
            'Perreault T, Dunning J, et al. "Dry needling strategies for musculoskeletal '
            'conditions: do the number of needles and needle retention time matter?" '
            "J Bodyw Mov Ther 2021;26:353-363"
        ),
        grade="P",
        supports="pistoning technique; trials retained needles 5-40 min, typically 20-30 min",
    ),
    Source(
        id="kalichman-2010",
        reference=(
            'Kalichman L, Vulfsons S. "Dry needling in the management of musculoskeletal pain." '
            "J Am Board Fam Med 2010;23:640-646"
        ),
        grade="P",
        supports="over lungs and large vessels prefer the superficial technique",
    ),
    Source(
        id="valera-calero-rhomboid",
        reference=(
            "Valera-Calero JA, et al. Ultrasound study of depth to pleura under rhomboid major "
            "(preprint)"
        ),
        grade="P",
        supports="maximum 19 mm recommended to reach the deep limit of rhomboid major",
    ),
    Source(
        id="mitchell-2018",
        reference=(
            'Mitchell UH, et al. "Positional changes in distance to the pleura..." '
            "Physiotherapy 2019"
        ),
        grade="P",
        supports="depth to lung varies with position, sex and body composition",
    ),
    Source(
        id="brady-2014",
        reference=(
            'Brady S, et al. "Adverse events following trigger point dry needling: a prospective '
            'survey of chartered physiotherapists." J Man Manip Ther 2014;22(3):134-140'
        ),
        grade="P",
        supports="adverse-event rates over 7 629 treatments; mild vs significant grading",
    ),
    Source(
        id="boyce-2020",
        reference=(
            'Boyce D, et al. "Adverse events associated with therapeutic dry needling." '
            "Int J Sports Phys Ther 2020;15(1):103-113"
        ),
        grade="P",
        supports="adverse-event rates over 20 464 sessions; minor vs major grading",
    ),
    Source(
        id="pns-review",
        reference=(
            "Systematic review table of post-needling soreness, J Clin Med 2020;9:3300 "
            "(PMC7602246, table 5)"
        ),
        grade="P",
        supports="post-needling soreness resolves within 24-48 h / 24-36 h in most patients",
    ),
    Source(
        id="apta-cpt-2020",
        reference=(
            'APTA Magazine, "Compliance Matters: Physician Fee Schedule Coding Updates", Feb 2020'
        ),
        grade="P",
        supports="CPT 20560 (1 or 2 muscles) and 20561 (3 or more muscles), from 2020-01-01",
        url="https://www.apta.org/apta-magazine/2020/02/01/compliance-matters-physician-fee-schedule-coding-updates",
    ),
    Source(
        id="cms-ncd-30.3.3",
        reference=(
            "CMS National Coverage Determination 30.3.3, Acupuncture for Chronic Low Back "
            "Pain (2020)"
        ),
        grade="P",
        supports="Medicare coverage of dry needling limited to chronic low back pain",
    ),
    Source(
        id="icd10cm",
        reference="ICD-10-CM code set (US), fiscal-year editions; codes change every 1 October",
        grade="P",
        supports="condition codes of the condition catalog",
    ),
    Source(
        id="fda-cds-2026",
        reference=(
            'US FDA, "Clinical Decision Support Software" guidance (revised 2026-01-06); '
            "FD&C Act §520(o)(1)(E)"
        ),
        grade="P",
        supports=(
            "criterion 4: the professional can independently review the basis of each "
            "recommendation"
        ),
    ),
    Source(
        id="cds-hooks-2.0",
        reference="HL7 CDS Hooks 2.0 specification",
        grade="P",
        supports=(
            "cards, indicators, sources, overrideReasons, empty cards, 412 on missing "
            "prefetch"
        ),
        url="https://cds-hooks.hl7.org/2.0/",
    ),
    Source(
        id="fhir-r4",
        reference="HL7 FHIR R4",
        grade="P",
        supports=(
            "resource mapping of screening inputs and outputs; "
            "OperationOutcome.issue.expression"
        ),
        url="https://hl7.org/fhir/R4/",
    ),
    Source(
        id="ips-pregnancy",
        reference=(
            "HL7 IPS, Observation pregnancy status: LOINC 82810-3; LA15173-0 pregnant, "
            "LA26683-5 not pregnant, LA4489-6 unknown"
        ),
        grade="P",
        supports="pregnancy input from FHIR",
    ),
    Source(
        id="atc-b01a",
        reference="WHO ATC classification, B01A antithrombotic agents",
        grade="P",
        supports="recognising anticoagulant/antiplatelet therapy in medication lists",
    ),
    Source(
        id="va-pt-guidance",
        reference=(
            "Virginia Board of Physical Therapy, dry needling guidance document and proposed "
            "18VAC112-20-121"
        ),
        grade="P",
        supports="training hours; procedure note per treatment; not delegable to assistants",
    ),
    Source(
        id="travell-simons-2019",
        reference=(
            "Donnelly JM, Fernandez-de-las-Penas C, Finnegan M, Freeman JL. Travell, Simons & "
            "Simons' Myofascial Pain and Dysfunction: The Trigger Point Manual, 3rd ed. "
            "Wolters Kluwer, 2019"
        ),
        grade="P",
        supports=(
            "the muscles commonly treated for myofascial trigger points, their body regions and "
            "anatomy (muscle ids and regions; lung and haemostasis facts need their own sources)"
        ),
    ),
    Source(
        id="chen-2018",
        reference=(
            "Chen HN, Chang CY, Chen LZ, Chang YJ, Lin JG. \"Using Ultrasonography Measurements "
            "to Determine the Depth of the GB 21 Acupoint to Prevent Pneumothorax.\" "
            "J Acupunct Meridian Stud 2018;11(6):355-360"
        ),
        grade="P",
        supports=(
            "skin to pleura at GB21 (upper trapezius) by ultrasound, 60 women and 41 men: mean "
            "14.6 mm in women, 17.4 mm in men; depth grows with weight, height and BMI"
        ),
    ),
    Source(
        id="snomed-ct",
        reference="SNOMED CT, international edition (SNOMED International), as used by US Core",
        grade="P",
        supports=(
            "clinical finding, procedure, substance and body-structure codes in FHIR input; each "
            "concept cited with its id and fully specified name"
        ),
    ),
    Source(
        id="rxnorm",
        reference=(
            "RxNorm (US National Library of Medicine), "
            "system http://www.nlm.nih.gov/research/umls/rxnorm"
        ),
        grade="P",
        supports="medication codes in US EHR data (ingredient and clinical-drug concepts)",
        url="http://www.nlm.nih.gov/research/umls/rxnorm",
    ),
    Source(
        id="loinc",
        reference="LOINC (Regenstrief Institute)",
        grade="P",
        supports="observation codes (e.g. 82810-3 pregnancy status) and answer lists",
    ),
    Source(
        id="us-core",
        reference="HL7 US Core Implementation Guide (R4-based)",
        grade="P",
        supports=(
            "which resources and terminologies US EHRs expose (MedicationRequest, Condition, "
            "Observation, Procedure, AllergyIntolerance)"
        ),
        url="https://hl7.org/fhir/us/core/",
    ),
    Source(
        id="synthea",
        reference=(
            "Synthea synthetic patient generator (MITRE), sample R4 bundles published by SMART "
            "Health IT (smart-on-fhir/generated-sample-data, Apache-2.0)"
        ),
        grade="S",
        supports=(
            "realistic US-coded test input (SNOMED CT, RxNorm, LOINC); a code seen there is "
            "evidence of use, not a definition"
        ),
    ),
    Source(
        id="sarif-2.1.0",
        reference="OASIS Static Analysis Results Interchange Format (SARIF) 2.1.0",
        grade="P",
        supports="the --format sarif output",
    ),
    Source(
        id="policy",
        reference="dryneedle clinic-policy default (no external source)",
        grade="C",
        supports="numbers the sources do not give; always overridable and documented as such",
    ),
)

SOURCES: Mapping[str, Source] = types.MappingProxyType({s.id: s for s in _ALL})
"""Every known source, by id (read-only)."""


def get_source(source_id: str) -> Source:
    """Return the source with this id.

    Args:
        source_id: An id from ``SOURCES.md``.

    Returns:
        The registered :class:`Source`.

    Raises:
        KeyError: If no such source is registered.
    """
    return SOURCES[source_id]
