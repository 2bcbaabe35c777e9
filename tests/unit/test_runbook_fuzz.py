"""Property tests of the runbook loader: whatever bytes it is given, it either returns a
``Runbook`` or raises ``RunbookError`` whose problems are ``FILE:LINE:COLUMN: message``
lines sorted by position, and never any other exception."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from drconsole.errors import RunbookError
from drconsole.runbook.loader import TOP_KEYS, parse_runbook
from drconsole.runbook.model import MODES, SCHEMA, Runbook
from drconsole.runbook.steps import STEP_KEYS

PATH = Path("fuzz/runbook.yaml")
PROBLEM_LINE = re.compile(r"^.+:\d+:\d+: .+$")
FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID = textwrap.dedent(
    """\
    schema: drconsole/runbook/v1
    id: kb-prod-restore
    title: Restore the support knowledge base
    owner: search-sre
    objectives: {rto: 1h, rpo: 4h}
    catalog: {url: s3://acme-vdb-backups/kb-prod, credentials: keyring:drconsole/kb}
    target:
      engine: chroma
      url: http://chroma.internal:8000
      token: env:CHROMA_TOKEN
    collections: [help_articles, tickets]
    permissions: {tenant_field: tenant_id, acl_field: acl_groups}
    golden: golden/kb.json
    x-team: &team {pager: kb-oncall}
    steps:
      - id: declare
        kind: manual
        instructions: |
          Freeze ingestion for {{ runbook.id }}.
          Record the impact start time.
        when: {modes: [incident]}
        marks: [impact_start, declared]
      - id: schema
        action: command
        with:
          argv: [./restore-schema.sh, --tenant, acme]
          env: {DB_PASSWORD: "env:DB_PASSWORD", LOG_LEVEL: debug}
          tail_lines: 20
        needs: [declare]
        destructive: true
        timeout: 10m
        marks: restore_started
      - id: data
        action: command
        with: {argv: [./restore-data.sh]}
        needs: schema
        retries: {max: 3, delay: 5s}
        on_failure: abort
        gate: true
        marks: service_restored
      - id: resume
        kind: approval
        instructions: "Resume from {{ snapshot.ingest_checkpoint }}."
        auto_confirm_in_drill: true
        x-note: *team
      - id: cleanup
        action: command
        with: {argv: [./drop-sandbox.sh]}
        when: {modes: drill}
    """
)


def check(data: bytes) -> None:
    """The property: a coherent Runbook, or a RunbookError with well-formed problems."""
    try:
        runbook = parse_runbook(data, PATH)
    except RunbookError as error:
        assert error.problems
        positions = []
        for problem in error.problems:
            assert PROBLEM_LINE.fullmatch(problem), repr(problem)
            assert problem.startswith(f"{PATH}:"), repr(problem)
            line, column = problem[len(f"{PATH}:") :].split(":")[:2]
            assert int(line) >= 1 and int(column) >= 1, repr(problem)
            positions.append((int(line), int(column)))
        assert positions == sorted(positions)
    else:
        assert isinstance(runbook, Runbook)
        ids = [step.id for step in runbook.steps]
        assert len(ids) == len(set(ids))
        for mode in MODES:
            plan = runbook.plan(mode)
            assert len(plan) == sum(step.runs_in(mode) for step in runbook.steps)
            restored = [step for step in plan if "service_restored" in step.marks]
            assert len(restored) == 1


def test_the_unmutated_runbook_is_valid() -> None:
    runbook = parse_runbook(VALID.encode(), PATH)

    assert [step.id for step in runbook.plan("drill")] == ["schema", "data", "resume", "cleanup"]


# --- (a) random input -------------------------------------------------------------------


@FAST
@given(st.text())
def test_random_text(text: str) -> None:
    check(text.encode("utf-8", "surrogatepass"))


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    check(data)


YAML_PIECES = [
    *"\n\n\n  :-[]{},&*!|>#'\"?%@`~\t\\",
    "- ",
    ": ",
    "  ",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "!!str ",
    "!!python/object ",
    "<<: ",
    "{{ ",
    " }}",
    "{{ run.id }}",
    "|\n",
    ">-\n",
    "\r\n",
    "\ufeff",
    "é",
    "null",
    "true",
    "1.5",
    "0x1F",
    "12:30",
    "2026-11-22",
    *TOP_KEYS,
    *STEP_KEYS,
    "x-",
    "command",
    "manual",
    "service_restored",
    "keyring:drconsole/kb",
]


@FAST
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=80).map("".join))
def test_random_yaml_looking_text(text: str) -> None:
    check(text.encode("utf-8", "surrogatepass"))


TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!seq", "!!map", "!!set"]


@FAST
@example(tag="!!int", value="")
@given(
    tag=st.sampled_from(TAGS),
    value=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=12),
)
def test_explicit_yaml_tags_on_random_values(tag: str, value: str) -> None:
    quoted = "'" + value.replace("'", "''") + "'"
    check(VALID.replace("owner: search-sre", f"owner: {tag} {quoted}").encode())


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["5s", "1h", "0s", "soon", "command", "manual", "drill", "env:X"])
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=12) | st.sampled_from(TOP_KEYS), children, max_size=5)
    ),
    max_leaves=40,
)


def dump(value: Any, flow: bool | None, unicode: bool) -> bytes:
    return yaml.safe_dump(
        value, default_flow_style=flow, allow_unicode=unicode, sort_keys=False
    ).encode("utf-8", "surrogatepass")


@FAST
@given(STRUCTURES, st.sampled_from([None, True, False]), st.booleans())
def test_random_structures_dumped_as_yaml(value: Any, flow: bool | None, unicode: bool) -> None:
    check(dump(value, flow, unicode))


# A runbook-shaped document: the right keys with plausible, and often wrong, values, so
# the checks past the YAML reader (steps, needs, cycles, milestones, params) are reached.
STEP_IDS = st.sampled_from(["a", "b", "c", "restore", "a b", ""])
FIELD_VALUES = (
    SCALARS
    | STEP_IDS
    | st.lists(STEP_IDS, max_size=3)
    | st.sampled_from(
        [
            "manual",
            "approval",
            "action",
            "command",
            "service_restored",
            ["service_restored", "declared"],
            "Resume {{ snapshot.id }} or {{ bogus }}",
            {"modes": ["drill"]},
            {"modes": ["incident", "drill"]},
            {"modes": "incident"},
            {"max": 3, "delay": "5s"},
            {"max": 101},
            "continue",
            "abort",
            "prep",
        ]
    )
)
WITH_VALUES = st.dictionaries(
    st.sampled_from(["argv", "cwd", "env", "tail_lines", "bogus"]),
    SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(st.sampled_from(["API_TOKEN", "LOG", "A"]), SCALARS, max_size=2),
    max_size=4,
)
WELL_FORMED_STEPS = st.sampled_from(
    [
        {"id": "a", "action": "command", "with": {"argv": ["x"]}, "marks": "service_restored"},
        {"id": "b", "kind": "manual", "instructions": "Check {{ run.id }}.", "needs": ["a"]},
        {"id": "c", "kind": "approval", "instructions": "Go?", "when": {"modes": ["drill"]}},
        {"id": "restore", "action": "command", "with": {"argv": ["y"]}, "needs": "c"},
    ]
)
STEPS = WELL_FORMED_STEPS | st.fixed_dictionaries(
    {"id": STEP_IDS},
    optional={
        **{key: FIELD_VALUES for key in STEP_KEYS if key not in ("id", "with")},
        "with": WITH_VALUES,
        "x-extra": SCALARS,
        "bogus": SCALARS,
    },
)
RUNBOOKS = st.fixed_dictionaries(
    {
        "schema": st.just(SCHEMA) | SCALARS,
        "id": st.just("kb") | SCALARS,
        "title": st.just("Restore") | SCALARS,
        "objectives": st.fixed_dictionaries({"rto": st.just("1h") | SCALARS}) | STRUCTURES,
        "steps": st.lists(STEPS, max_size=5),
    },
    optional={
        "catalog": st.dictionaries(
            st.sampled_from(["url", "sandbox", "credentials", "endpoint", "bogus"]),
            SCALARS | st.sampled_from(["s3://b/p", "http://u:p@h", "keyring:a/b", "s3"]),
            max_size=3,
        ),
        "target": st.dictionaries(
            st.sampled_from(["url", "sandbox", "engine", "token", "tenant", "bogus"]),
            SCALARS | st.sampled_from(["http://h", "chroma", "env:TOKEN"]),
            max_size=3,
        ),
        "collections": st.lists(st.text(max_size=5), max_size=4) | SCALARS,
        "permissions": STRUCTURES,
        "golden": SCALARS,
        "x-extra": STRUCTURES,
    },
)


@FAST
@given(RUNBOOKS, st.sampled_from([None, True, False]))
def test_random_runbook_shaped_documents(value: dict[str, Any], flow: bool | None) -> None:
    check(dump(value, flow, True))


# --- (b) mutations of a valid runbook ---------------------------------------------------

INSERTS = st.text(max_size=12) | st.lists(st.sampled_from(YAML_PIECES), max_size=6).map("".join)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """VALID with one to three random edits, each on the result of the previous one."""
    text = VALID
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        operation = draw(
            st.sampled_from(["delete", "duplicate", "replace", "insert", "indent", "swap"])
        )
        index = draw(st.integers(0, len(lines) - 1))
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, lines[index])
        elif operation == "indent":
            lines[index] = " " * draw(st.integers(0, 12)) + lines[index].lstrip(" ")
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            joined = "\n".join(lines)
            offset = draw(st.integers(0, len(joined)))
            if operation == "replace":
                offset = min(offset, len(joined) - 1)
                character = draw(st.characters() | st.sampled_from(YAML_PIECES[:30]))
                text = joined[:offset] + character + joined[offset + 1 :]
            else:
                text = joined[:offset] + draw(INSERTS) + joined[offset:]
            continue
        text = "\n".join(lines)
    return text


@FAST
@given(mutated())
def test_mutations_of_a_valid_runbook(text: str) -> None:
    assume(text != VALID)
    check(text.encode("utf-8", "surrogatepass"))
