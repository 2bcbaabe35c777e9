"""The runbook loader: a valid runbook becomes a model with every default applied, and each
load-time rule reports ``FILE:LINE:COLUMN: message`` at the exact place of the problem.

Most tests start from ``MINIMAL`` (nine lines, below) and add to it, so the line numbers
in the assertions can be read off the layout: top-level keys added with ``with_top`` land
on line 5, fields added to its step with ``with_fields`` on line 10 (column 5), and steps
added with ``with_steps`` start on line 10 (the step at column 5, its id at column 9).
"""

from __future__ import annotations

import hashlib
import re
import textwrap
import time
from pathlib import Path

import pytest

from drconsole.actions.registry import BUILTIN
from drconsole.errors import RunbookError
from drconsole.runbook.loader import load_runbook, parse_runbook
from drconsole.runbook.model import Retries, Runbook
from drconsole.runbook.yamlsource import MAX_BYTES, Position

PROBLEM_LINE = re.compile(r"(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)")

MINIMAL = textwrap.dedent(
    """\
    schema: drconsole/runbook/v1
    id: kb-restore
    title: Restore the knowledge base
    objectives: {rto: 1h}
    steps:
      - id: restore-kb
        action: command
        with: {argv: [restore-kb]}
        marks: service_restored
    """
)


def with_top(text: str) -> str:
    """MINIMAL with top-level lines inserted before ``steps:`` (from line 5)."""
    return MINIMAL.replace("steps:\n", textwrap.dedent(text) + "steps:\n")


def with_fields(text: str) -> str:
    """MINIMAL whose step gets more fields (from line 10, keys at column 5)."""
    return MINIMAL + textwrap.indent(textwrap.dedent(text), "    ")


def with_steps(text: str) -> str:
    """MINIMAL followed by more steps (from line 10)."""
    return MINIMAL + textwrap.indent(textwrap.dedent(text), "  ")


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "runbook.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Runbook:
    return load_runbook(write(tmp_path, text))


def problems_of(tmp_path: Path, text: str | bytes) -> list[str]:
    """The problems of a runbook that must not load, as ``LINE:COLUMN: message``; the
    ``FILE:`` prefix of each is checked and dropped."""
    path = write(tmp_path, text)
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    located = []
    for problem in caught.value.problems:
        match = PROBLEM_LINE.fullmatch(problem)
        assert match, f"not FILE:LINE:COLUMN: message: {problem!r}"
        assert match["file"] == str(path)
        located.append(f"{match['line']}:{match['column']}: {match['message']}")
    assert located, "a RunbookError must carry at least one problem"
    return located


def only_problem(tmp_path: Path, text: str | bytes) -> tuple[str, str]:
    """The one problem of a runbook, as (``LINE:COLUMN``, message)."""
    found = problems_of(tmp_path, text)
    assert len(found) == 1, found
    position, _, message = found[0].partition(": ")
    return position, message


def assert_words(message: str, *words: str) -> None:
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# --- valid runbooks ---------------------------------------------------------------------


def test_minimal_runbook_loads_with_every_default(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)

    runbook = load_runbook(path)

    assert runbook.id == "kb-restore"
    assert runbook.title == "Restore the knowledge base"
    assert runbook.path == path.resolve()
    assert runbook.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert runbook.rto_s == 3600.0
    assert runbook.rpo_s is None
    assert runbook.owner is None
    assert runbook.description is None
    assert runbook.catalog == {}
    assert runbook.target == {}
    assert runbook.collections == ()
    assert runbook.permissions == {}
    assert runbook.golden is None
    assert runbook.extensions == {}
    (step,) = runbook.steps
    assert step.id == "restore-kb"
    assert step.title == "Restore kb"
    assert step.kind == "action"
    assert step.action == "command"
    assert step.phase == "prep"
    assert step.params == {"argv": ["restore-kb"], "tail_lines": 40}
    assert step.instructions == ""
    assert step.needs == ()
    assert step.modes == ("incident", "drill")
    assert step.timeout_s is None
    assert step.retries == Retries(max=0, delay_s=0.0)
    assert step.on_failure == "ask"
    assert step.gate is False
    assert step.destructive is False
    assert step.marks == ("service_restored",)
    assert step.auto_confirm_in_drill is False
    assert step.is_manual is False
    assert step.position == Position(6, 5)
    assert [s.id for s in runbook.plan("incident")] == ["restore-kb"]
    assert [s.id for s in runbook.plan("drill")] == ["restore-kb"]


def test_parse_runbook_takes_bytes_and_the_path_they_came_from(tmp_path: Path) -> None:
    runbook = parse_runbook(MINIMAL.encode(), tmp_path / "elsewhere.yaml")

    assert runbook.id == "kb-restore"
    assert runbook.path == (tmp_path / "elsewhere.yaml").resolve()
    assert runbook.folder == tmp_path.resolve()


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + MINIMAL.encode()

    assert parse_runbook(data, tmp_path / "bom.yaml").id == "kb-restore"


REALISTIC = """\
    schema: drconsole/runbook/v1
    id: kb-prod-restore
    title: Restore the support knowledge base
    owner: search-sre
    description: Restore the KB from the newest intact snapshot.
    objectives: {rto: 1h, rpo: 4h}
    catalog: {url: s3://acme-vdb-backups/kb-prod, endpoint: https://s3.example.internal,
              credentials: keyring:drconsole/kb-backups}
    target:  {engine: chroma, url: http://chroma.internal:8000, tenant: acme, database: prod,
              token: keyring:drconsole/chroma-prod}
    collections: [help_articles, tickets]
    permissions: {tenant_field: tenant_id, acl_field: acl_groups, principals: [support, sre]}
    golden: golden/kb.json
    x-team: {pager: kb-oncall, escalation: [alice, bob]}
    steps:
      - id: declare
        title: Declare the incident and freeze ingestion
        kind: manual
        instructions: |
          Scale the ingestion workers to zero. Record the impact start time.
        when: {modes: [incident]}
        marks: [impact_start, declared, declared]
      - id: approve-restore
        kind: approval
        instructions: Approve restoring {{ snapshot.id }} into {{ target.url }}.
        auto_confirm_in_drill: true
      - id: verify
        action: command
        with: {argv: [drconsole, catalog, verify, --depth, full]}
        needs: [schema]
        gate: true
        timeout: 15m
      - id: schema
        action: command
        with:
          argv: [./restore-schema.sh, --tenant, acme]
          cwd: scripts
          env:
            CHROMA_TOKEN: keyring:drconsole/chroma-prod
            DB_PASSWORD: env:DB_PASSWORD
            LOG_LEVEL: debug
        destructive: true
        marks: restore_started
      - id: data
        action: command
        phase: data
        with: {argv: [./restore-data.sh], tail_lines: 200}
        needs: [verify, schema]
        retries: {max: 3, delay: 5s}
        on_failure: abort
        x-note: resumable
      - id: golden
        action: command
        phase: validation
        with: {argv: [./golden.sh, --k, 10]}
        needs: data
        gate: true
        marks: service_restored
      - id: resume-ingestion
        kind: manual
        instructions: "Resume ingestion from checkpoint {{ snapshot.ingest_checkpoint }}."
        on_failure: continue
      - id: cleanup
        action: command
        with: {argv: [./drop-sandbox.sh]}
        when: {modes: drill}
"""


def test_realistic_runbook_loads_into_the_model(tmp_path: Path) -> None:
    runbook = load(tmp_path, REALISTIC)

    assert runbook.id == "kb-prod-restore"
    assert runbook.owner == "search-sre"
    assert runbook.description == "Restore the KB from the newest intact snapshot."
    assert (runbook.rto_s, runbook.rpo_s) == (3600.0, 4 * 3600.0)
    assert runbook.catalog == {
        "url": "s3://acme-vdb-backups/kb-prod",
        "endpoint": "https://s3.example.internal",
        "credentials": "keyring:drconsole/kb-backups",
    }
    assert runbook.target == {
        "engine": "chroma",
        "url": "http://chroma.internal:8000",
        "tenant": "acme",
        "database": "prod",
        "token": "keyring:drconsole/chroma-prod",
    }
    assert runbook.collections == ("help_articles", "tickets")
    assert runbook.permissions == {
        "tenant_field": "tenant_id",
        "acl_field": "acl_groups",
        "principals": ["support", "sre"],
    }
    assert runbook.golden == "golden/kb.json"
    assert runbook.extensions == {"x-team": {"pager": "kb-oncall", "escalation": ["alice", "bob"]}}
    assert [step.id for step in runbook.steps] == [
        "declare",
        "approve-restore",
        "verify",
        "schema",
        "data",
        "golden",
        "resume-ingestion",
        "cleanup",
    ]


def test_realistic_runbook_step_fields_and_defaults(tmp_path: Path) -> None:
    runbook = load(tmp_path, REALISTIC)

    declare = runbook.step("declare")
    assert declare.title == "Declare the incident and freeze ingestion"
    assert declare.kind == "manual"
    assert declare.is_manual
    assert declare.phase == "prep"  # a manual step before any action step
    assert declare.instructions == (
        "Scale the ingestion workers to zero. Record the impact start time.\n"
    )
    assert declare.modes == ("incident",)
    assert declare.marks == ("impact_start", "declared")  # the repeated one is dropped
    assert declare.position == Position(16, 5)

    approve = runbook.step("approve-restore")
    assert approve.kind == "approval"
    assert approve.title == "Approve restore"  # made from the id
    assert approve.phase == "prep"
    assert approve.auto_confirm_in_drill is True
    assert approve.instructions == "Approve restoring {{ snapshot.id }} into {{ target.url }}."

    verify = runbook.step("verify")
    assert verify.gate is True
    assert verify.timeout_s == 15 * 60.0
    assert verify.needs == ("schema",)
    assert verify.params["argv"] == ["drconsole", "catalog", "verify", "--depth", "full"]

    schema = runbook.step("schema")
    assert schema.destructive is True
    assert schema.marks == ("restore_started",)
    assert schema.params == {
        "argv": ["./restore-schema.sh", "--tenant", "acme"],
        "cwd": "scripts",
        "env": {
            "CHROMA_TOKEN": "keyring:drconsole/chroma-prod",
            "DB_PASSWORD": "env:DB_PASSWORD",
            "LOG_LEVEL": "debug",
        },
        "tail_lines": 40,
    }

    data = runbook.step("data")
    assert data.phase == "data"
    assert data.params == {"argv": ["./restore-data.sh"], "tail_lines": 200}
    assert data.retries == Retries(max=3, delay_s=5.0)
    assert data.on_failure == "abort"
    assert data.needs == ("verify", "schema")

    golden = runbook.step("golden")
    assert golden.phase == "validation"
    assert golden.needs == ("data",)  # a single string is a list of one
    assert golden.params["argv"] == ["./golden.sh", "--k", "10"]
    assert golden.marks == ("service_restored",)
    assert golden.on_failure == "ask"

    resume = runbook.step("resume-ingestion")
    assert resume.phase == "cutover"  # a manual step after an action step
    assert resume.on_failure == "continue"
    assert resume.gate is False

    cleanup = runbook.step("cleanup")
    assert cleanup.modes == ("drill",)  # a single mode may be written without a list
    assert cleanup.phase == "prep"  # the command action's phase
    assert cleanup.destructive is False


def test_plan_orders_by_needs_then_document_order(tmp_path: Path) -> None:
    runbook = load(tmp_path, REALISTIC)

    assert [step.id for step in runbook.plan("incident")] == [
        "declare",
        "approve-restore",
        "schema",
        "verify",
        "data",
        "golden",
        "resume-ingestion",
    ]
    assert [step.id for step in runbook.plan("drill")] == [
        "approve-restore",
        "schema",
        "verify",
        "data",
        "golden",
        "resume-ingestion",
        "cleanup",
    ]


def test_service_restored_may_be_marked_by_different_steps_per_mode(tmp_path: Path) -> None:
    runbook = load(
        tmp_path,
        """\
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore
        objectives: {rto: 30m}
        target: {sandbox: chroma}
        steps:
          - id: reconnect
            kind: manual
            instructions: Point traffic at the restored database.
            when: {modes: [incident]}
            marks: service_restored
          - id: golden
            action: command
            with: {argv: [./golden.sh]}
            when: {modes: [drill]}
            marks: service_restored
        """,
    )

    assert runbook.target == {"sandbox": "chroma", "engine": "chroma"}
    assert runbook.step("reconnect").phase == "prep"
    assert [s.id for s in runbook.plan("incident")] == ["reconnect"]
    assert [s.id for s in runbook.plan("drill")] == ["golden"]


def test_extension_keys_are_kept_at_the_top_and_allowed_in_steps(tmp_path: Path) -> None:
    text = with_fields("x-owner-note: keep\n") + "x-anything: [1, {a: b}]\n"

    runbook = load(tmp_path, text)

    assert runbook.extensions == {"x-anything": [1, {"a": "b"}]}


def test_retries_may_reach_the_maximum_with_no_delay(tmp_path: Path) -> None:
    runbook = load(tmp_path, with_fields("retries: {max: 100, delay: 0s}\n"))

    assert runbook.step("restore-kb").retries == Retries(max=100, delay_s=0.0)


def test_url_with_a_user_but_no_password_is_accepted(tmp_path: Path) -> None:
    runbook = load(tmp_path, with_top("catalog: {url: 's3://backup-reader@bucket/kb'}\n"))

    assert runbook.catalog == {"url": "s3://backup-reader@bucket/kb"}


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = with_top("x-argv: &argv [restore-kb, --all]\n").replace(
        "{argv: [restore-kb]}", "{argv: *argv}"
    )

    runbook = load(tmp_path, text)

    assert runbook.step("restore-kb").params["argv"] == ["restore-kb", "--all"]


# --- reading the file -------------------------------------------------------------------


def test_missing_file_is_a_runbook_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(RunbookError) as caught:
        load_runbook(path)

    assert caught.value.problems == [f"{path}: no such file"]
    assert str(path) in str(caught.value)


def test_directory_is_a_runbook_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(RunbookError) as caught:
        load_runbook(tmp_path)

    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path}: ")
    assert "folder" in problem
    assert str(tmp_path) in str(caught.value)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    text = MINIMAL.replace("title: Restore the", "title: Restore: the")

    position, message = only_problem(tmp_path, text)

    assert position == "3:15"
    assert_words(message, "YAML syntax error", "mapping values are not allowed")


def test_unclosed_flow_sequence_is_located(tmp_path: Path) -> None:
    text = MINIMAL.replace("title: Restore the knowledge base", "title: [unclosed")

    position, message = only_problem(tmp_path, text)

    assert position == "4:11"
    assert_words(message, "YAML syntax error", "expected ',' or ']'")


def test_second_yaml_document_is_refused(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL + "---\nid: other\n")

    assert position == "10:1"
    assert_words(message, "YAML syntax error", "another document")


def test_second_yaml_document_message_says_what_was_expected(tmp_path: Path) -> None:
    _, message = only_problem(tmp_path, MINIMAL + "---\nid: other\n")

    assert "single document" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    assert only_problem(tmp_path, text) == ("1:1", "the file is empty")


def test_a_list_document_is_refused(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "- schema\n- id\n") == ("1:1", "the runbook must be a mapping")


def test_a_scalar_document_is_refused(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "\n\njust words\n") == ("3:1", "the runbook must be a mapping")


def test_non_utf8_bytes_are_refused_with_their_position(tmp_path: Path) -> None:
    data = b"schema: drconsole/runbook/v1\nid: kb-restore\ntitle: Caf\xe9 restore\n"

    assert only_problem(tmp_path, data) == ("3:11", "the file is not UTF-8 text")


def test_control_character_is_refused_with_its_position(tmp_path: Path) -> None:
    data = b"schema: drconsole/runbook/v1\nid: kb-restore\ntitle: ab\x01c\n"

    position, message = only_problem(tmp_path, data)

    assert position == "3:10"
    assert_words(message, "character YAML does not allow")


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    data = MINIMAL.encode() + b"#" * (MAX_BYTES + 1 - len(MINIMAL))
    assert len(data) == MAX_BYTES + 1 == 1024 * 1024 + 1

    position, message = only_problem(tmp_path, data)

    assert position == "1:1"
    assert_words(message, "1048577 bytes", "limited to 1048576")


def test_file_of_exactly_one_mebibyte_is_read(tmp_path: Path) -> None:
    data = MINIMAL.encode() + b"#" * (MAX_BYTES - len(MINIMAL))

    assert parse_runbook(data, tmp_path / "big.yaml").id == "kb-restore"


# --- YAML-level refusals ----------------------------------------------------------------


def test_duplicate_top_level_key_names_the_first_line(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL + "title: Restore again\n")

    assert position == "10:1"
    assert_words(message, "duplicate key 'title'", "first written at line 3")


def test_duplicate_key_inside_a_step_names_the_first_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("{argv: [restore-kb]}", "{argv: [restore-kb], argv: [other]}")

    position, message = only_problem(tmp_path, text)

    assert position == "8:32"
    assert_words(message, "duplicate key 'argv'", "first written at line 8")


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system [echo pwned]", "python/object/apply:os.system"),
        ("!!python/object:os.system {cmd: echo}", "python/object:os.system"),
        ("!!python/name:os.system ''", "python/name:os.system"),
        ("!!binary aGVsbG8=", "tag:yaml.org,2002:binary"),
        ("!custom value", "!custom"),
    ],
)
def test_unsupported_yaml_tag_is_refused(tmp_path: Path, value: str, tag: str) -> None:
    text = MINIMAL.replace("title: Restore the knowledge base", f"title: {value}")

    position, message = only_problem(tmp_path, text)

    assert position == "3:8"
    assert_words(message, "unsupported YAML tag", tag)


def test_merge_key_is_refused(tmp_path: Path) -> None:
    text = with_top("x-common: &common {on_failure: abort}\n") + "    <<: *common\n"

    position, message = only_problem(tmp_path, text)

    assert position == "11:5"
    assert_words(message, "merge keys (<<) are not supported")


def test_billion_laughs_is_refused_quickly_without_expanding(tmp_path: Path) -> None:
    lines = ["schema: drconsole/runbook/v1", "x-lol0: &a0 [lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"x-lol{level}: &a{level} [{aliases}]")
    text = "\n".join(lines) + "\n"

    started = time.monotonic()
    found = problems_of(tmp_path, text)
    elapsed = time.monotonic() - started

    assert elapsed < 5.0
    assert len(found) == 1, found
    assert_words(found[0], "expands to more than 50000 values", "aliases", "refusing")


def test_deeply_nested_document_is_refused(tmp_path: Path) -> None:
    text = "schema: drconsole/runbook/v1\nx-deep: " + "[" * 100 + "]" * 100 + "\n"

    position, message = only_problem(tmp_path, text)

    # The top mapping is level 0, so the 33rd bracket (column 8 + 33) is one too deep.
    assert position == "2:41"
    assert_words(message, "nests deeper than 32 levels")


def test_extremely_deep_nesting_does_not_overflow_the_stack(tmp_path: Path) -> None:
    text = "x-deep: " + "[" * 20_000 + "]" * 20_000 + "\n"

    position, message = only_problem(tmp_path, text)

    assert position == "1:1"
    assert_words(message, "nests deeper than 32 levels")


def test_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    text = "schema: drconsole/runbook/v1\nx-loop: &loop [*loop]\n"

    position, message = only_problem(tmp_path, text)

    assert position == "2:9"
    assert_words(message, "nests deeper than 32 levels")


# --- top-level sections -----------------------------------------------------------------


def test_missing_schema(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL.split("\n", 1)[1])

    assert position == "1:1"
    assert_words(message, "missing `schema: drconsole/runbook/v1`")


def test_wrong_schema(tmp_path: Path) -> None:
    text = MINIMAL.replace("drconsole/runbook/v1", "drconsole/runbook/v2")

    position, message = only_problem(tmp_path, text)

    assert position == "1:9"
    assert_words(message, "unsupported schema 'drconsole/runbook/v2'", "reads drconsole/runbook/v1")


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("id", ("missing `id`",)),
        ("title", ("missing `title`",)),
        ("objectives", ("missing `objectives", "rto")),
        ("steps", ("missing `steps`",)),
    ],
)
def test_missing_required_section(tmp_path: Path, key: str, words: tuple[str, ...]) -> None:
    lines = MINIMAL.splitlines(keepends=True)
    kept = lines[:4] if key == "steps" else [line for line in lines if not line.startswith(key)]
    assert len(kept) < len(lines)

    position, message = only_problem(tmp_path, "".join(kept))

    assert position == "1:1"
    assert_words(message, *words)


def test_all_missing_sections_are_reported_together(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "schema: drconsole/runbook/v1\n")

    assert len(found) == 4, found
    assert all(problem.startswith("1:1: missing `") for problem in found)
    named = {problem.split("`")[1].split(":")[0] for problem in found}
    assert named == {"id", "title", "objectives", "steps"}


def test_empty_steps_list(tmp_path: Path) -> None:
    text = MINIMAL.split("steps:")[0] + "steps: []\n"

    assert only_problem(tmp_path, text) == ("5:8", "steps must be a non-empty list")


def test_objectives_without_rto(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL.replace("{rto: 1h}", "{rpo: 4h}"))

    assert position == "4:13"
    assert_words(message, "objectives needs `rto`")


def test_bad_runbook_id(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL.replace("id: kb-restore", "id: kb restore"))

    assert position == "2:5"
    assert_words(message, "id must be letters, digits")


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, MINIMAL + "colections: [tickets]\n")

    assert position == "10:1"
    assert_words(message, "unknown key 'colections' in the runbook", "did you mean 'collections'?")


def test_unknown_top_level_key_unlike_any_known_key_has_no_suggestion(tmp_path: Path) -> None:
    assert only_problem(tmp_path, MINIMAL + "zzz: 1\n") == (
        "10:1",
        "unknown key 'zzz' in the runbook",
    )


@pytest.mark.parametrize(
    ("section", "column", "words"),
    [
        (
            "catalog: {url: s3://b/kb, credential: keyring:drconsole/kb}",
            27,
            ("unknown key 'credential' in catalog", "did you mean 'credentials'?"),
        ),
        (
            "target: {engine: chroma, url: http://h:8000, tenent: acme}",
            46,
            ("unknown key 'tenent' in target", "did you mean 'tenant'?"),
        ),
        (
            "permissions: {tenant_field: tenant_id, acl_feild: acl}",
            40,
            ("unknown key 'acl_feild' in permissions", "did you mean 'acl_field'?"),
        ),
    ],
    ids=["catalog", "target", "permissions"],
)
def test_unknown_key_in_a_section(
    tmp_path: Path, section: str, column: int, words: tuple[str, ...]
) -> None:
    position, message = only_problem(tmp_path, with_top(section + "\n"))

    assert position == f"5:{column}"
    assert_words(message, *words)


def test_unknown_key_in_objectives(tmp_path: Path) -> None:
    text = MINIMAL.replace("{rto: 1h}", "{rto: 1h, rp0: 4h}")

    position, message = only_problem(tmp_path, text)

    assert position == "4:23"
    assert_words(message, "unknown key 'rp0' in objectives", "did you mean 'rpo'?")


def test_collection_listed_twice(tmp_path: Path) -> None:
    text = with_top("collections: [help_articles, tickets, tickets]\n")

    position, message = only_problem(tmp_path, text)

    assert position == "5:39"
    assert_words(message, "collection 'tickets' is listed twice")


@pytest.mark.parametrize(
    "section",
    [
        "target: {engine: chroma, url: http://h:8000, sandbox: chroma}",
        "target: {engine: chroma, tenant: acme}",
    ],
    ids=["target-both", "target-neither"],
)
def test_exactly_one_of_url_or_sandbox(tmp_path: Path, section: str) -> None:
    where = section.split(":", maxsplit=1)[0]

    position, message = only_problem(tmp_path, with_top(section + "\n"))

    assert position == f"5:{len(where) + 3}"  # the opening brace
    assert_words(message, f"{where} needs exactly one of `url` or `sandbox`")


@pytest.mark.parametrize(
    ("section", "position", "words"),
    [
        ("catalog: {credentials: keyring:drconsole/kb}", "5:10", ["catalog needs `url`"]),
        ("catalog: {url: kb, folder: s3}", "5:28", ["catalog.folder", "`sandbox: s3` only"]),
        ("catalog: {sandbox: s3, url: s3://b/kb}", "5:10", ["needs `folder`", "s3://BUCKET"]),
        ("catalog: {sandbox: s3, folder: s3}", "5:10", ["needs `folder`", "url: s3://"]),
        ("catalog: {sandbox: s3, folder: s3, url: kb}", "5:10", ["url: s3://BUCKET/PREFIX"]),
        ("catalog: {sandbox: local, folder: s3, url: s3://b}", "5:20", ["catalog.sandbox", "s3"]),
        (
            "catalog: {sandbox: s3, folder: s3, url: s3://b, endpoint: http://h}",
            "5:59",
            ["catalog.endpoint does not go with `sandbox`"],
        ),
    ],
    ids=["neither", "folder-alone", "no-folder", "no-url", "not-s3", "local", "endpoint"],
)
def test_catalog_is_a_url_or_a_sandbox_s3(
    tmp_path: Path, section: str, position: str, words: list[str]
) -> None:
    found, message = only_problem(tmp_path, with_top(section + "\n"))

    assert found == position
    assert_words(message, *words)


def test_a_sandbox_s3_catalog_loads_with_its_folder_beside_the_runbook(tmp_path: Path) -> None:
    runbook = load(tmp_path, with_top("catalog: {sandbox: s3, folder: s3, url: s3://demo/kb}\n"))

    assert runbook.catalog == {"sandbox": "s3", "folder": "s3", "url": "s3://demo/kb"}
    assert runbook.catalog_sandbox_folder() == tmp_path / "s3"


def test_target_with_a_url_needs_an_engine(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_top("target: {url: http://h:8000}\n"))

    assert position == "5:9"
    assert_words(message, "target needs `engine`", "chroma")


# --- durations and retries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("objectives", "column", "words"),
    [
        ("{rto: 5}", 19, ("objectives.rto must be a duration like 90s", "not 5")),
        ("{rto: 1x}", 19, ("objectives.rto", "'1x' is not a duration")),
        ("{rto: 0s}", 19, ("objectives.rto must be longer than zero",)),
        ("{rto: 1h, rpo: soon}", 28, ("objectives.rpo", "'soon' is not a duration")),
    ],
)
def test_bad_objective_duration(
    tmp_path: Path, objectives: str, column: int, words: tuple[str, ...]
) -> None:
    position, message = only_problem(tmp_path, MINIMAL.replace("{rto: 1h}", objectives))

    assert position == f"4:{column}"
    assert_words(message, *words)


@pytest.mark.parametrize(
    ("field", "column", "words"),
    [
        ("timeout: 0s", 14, ("timeout must be longer than zero",)),
        ("timeout: 5", 14, ("timeout must be a duration like 90s", "not 5")),
        ("timeout: 1x", 14, ("timeout", "'1x' is not a duration")),
        ("retries: {max: 2, delay: 1x}", 30, ("retries.delay", "'1x' is not a duration")),
    ],
)
def test_bad_step_duration(tmp_path: Path, field: str, column: int, words: tuple[str, ...]) -> None:
    position, message = only_problem(tmp_path, with_fields(field + "\n"))

    assert position == f"10:{column}"
    assert_words(message, *words)


@pytest.mark.parametrize("value", ["101", "-1", "three", "true", "2.5"])
def test_retries_max_out_of_range(tmp_path: Path, value: str) -> None:
    text = with_fields(f"retries: {{max: {value}, delay: 5s}}\n")

    position, message = only_problem(tmp_path, text)

    assert position == "10:20"
    assert_words(message, "retries.max must be a whole number from 0 to 100")


def test_retries_without_max(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("retries: {delay: 5s}\n"))

    assert position == "10:14"
    assert_words(message, "retries needs `max: N`")


# --- step fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "column", "words"),
    [
        ("titel: Restore the data", 5, ("unknown key 'titel' in a step", "did you mean 'title'?")),
        (
            "when: {modes: [incident, drill], mode: drill}",
            38,
            ("unknown key 'mode' in when", "did you mean 'modes'?"),
        ),
        (
            "retries: {max: 3, dealy: 5s}",
            23,
            ("unknown key 'dealy' in retries", "did you mean 'delay'?"),
        ),
    ],
    ids=["step", "when", "retries"],
)
def test_unknown_key_in_a_step(
    tmp_path: Path, field: str, column: int, words: tuple[str, ...]
) -> None:
    position, message = only_problem(tmp_path, with_fields(field + "\n"))

    assert position == f"10:{column}"
    assert_words(message, *words)


def test_unknown_key_in_with(tmp_path: Path) -> None:
    text = MINIMAL.replace("{argv: [restore-kb]}", "{argv: [restore-kb], tail_line: 10}")

    position, message = only_problem(tmp_path, text)

    assert position == "8:32"
    assert_words(
        message, "unknown key 'tail_line' in `with` of command", "did you mean 'tail_lines'?"
    )


def test_unknown_action_suggests_the_closest(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: restore-data
          action: comand
          with: {argv: [restore-data]}
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "11:13"
    assert_words(
        message,
        "unknown action 'comand'",
        "did you mean 'command'?",
        f"(known: {', '.join(sorted(BUILTIN))})",
    )


def test_missing_required_with_param_without_with(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: restore-data
          action: command
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "11:13"  # at the action, as there is no `with`
    assert_words(message, "command needs `with.argv`", "the program and its arguments")


def test_missing_required_with_param_with_other_params(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: restore-data
          action: command
          with: {cwd: scripts}
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "12:11"
    assert_words(message, "command needs `with.argv`")


@pytest.mark.parametrize(
    ("with_value", "column", "words"),
    [
        ("{argv: restore-kb}", 18, ("with.argv must be a non-empty list of strings",)),
        ("{argv: []}", 18, ("with.argv must be a non-empty list of strings",)),
        ("{argv: [[restore-kb]]}", 18, ("with.argv must be a list of strings",)),
        ("{argv: [a], tail_lines: ten}", 35, ("with.tail_lines must be a whole number", "'ten'")),
        ("{argv: [a], tail_lines: true}", 35, ("with.tail_lines must be a whole number",)),
        ("{argv: [a], tail_lines: 1.5}", 35, ("with.tail_lines must be a whole number",)),
        ("{argv: [a], tail_lines: 0}", 35, ("with.tail_lines must be at least 1, not 0",)),
        ("{argv: [a], tail_lines: 5000}", 35, ("with.tail_lines must be at most 1000, not 5000",)),
        ("{argv: [a], cwd: 5}", 28, ("with.cwd must be a non-empty string", "5")),
        ("{argv: [a], cwd: ''}", 28, ("with.cwd must be a non-empty string",)),
        ("{argv: [a], env: [A]}", 28, ("with.env must be a mapping of names to strings",)),
        ("{argv: [a], env: {A: [b]}}", 28, ("with.env 'A' must be a string",)),
    ],
)
def test_bad_with_value(
    tmp_path: Path, with_value: str, column: int, words: tuple[str, ...]
) -> None:
    text = MINIMAL.replace("{argv: [restore-kb]}", with_value)

    position, message = only_problem(tmp_path, text)

    assert position == f"8:{column}"
    assert_words(message, *words)


def test_with_that_is_not_a_mapping(tmp_path: Path) -> None:
    found = problems_of(tmp_path, MINIMAL.replace("{argv: [restore-kb]}", "[restore-kb]"))

    assert [problem.split(": ")[0] for problem in found] == ["8:11", "8:11"]
    assert_words(found[0], "with must be a mapping")
    assert_words(found[1], "command needs `with.argv`")


def test_with_on_a_manual_step(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manual
          instructions: Reconnect traffic.
          with: {argv: [reconnect]}
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "13:11"
    assert_words(message, "`with` belongs to action steps only")


@pytest.mark.parametrize("kind", ["manual", "approval"])
def test_manual_step_without_instructions(tmp_path: Path, kind: str) -> None:
    text = with_steps(
        f"""\
        - id: reconnect
          kind: {kind}
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "10:5"
    assert_words(message, f"a {kind} step needs instructions")


def test_step_with_neither_action_nor_kind(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          instructions: Reconnect traffic.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "10:5"
    assert_words(message, "a step needs `action: NAME` or `kind: manual` / `kind: approval`")


def test_kind_action_without_action(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: action
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "11:11"
    assert_words(message, "a `kind: action` step needs `action: NAME`")


def test_unknown_kind(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manul
          instructions: Reconnect traffic.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "11:11"
    assert_words(message, "kind must be one of action, manual, approval", "did you mean 'manual'?")


@pytest.mark.parametrize("kind", ["manual", "approval"])
def test_manual_step_with_an_action(tmp_path: Path, kind: str) -> None:
    text = with_steps(
        f"""\
        - id: reconnect
          kind: {kind}
          instructions: Reconnect traffic.
          action: command
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "13:13"
    assert_words(message, f"a {kind} step cannot also name an action")


def test_step_without_id(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - kind: manual
          instructions: Reconnect traffic.
        """
    )

    assert only_problem(tmp_path, text) == ("10:5", "step #2 has no id")


def test_step_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert only_problem(tmp_path, with_steps("- just words\n")) == (
        "10:5",
        "step #2 must be a mapping",
    )


def test_bad_step_id(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: -reconnect
          kind: manual
          instructions: Reconnect traffic.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "10:9"
    assert_words(message, "step id '-reconnect' must be letters, digits")


def test_unknown_phase_and_on_failure(tmp_path: Path) -> None:
    found = problems_of(tmp_path, with_fields("phase: restore\non_failure: retry\n"))

    assert len(found) == 2, found
    assert found[0].startswith("10:12: phase must be one of prep, verify, schema, data")
    assert found[1].startswith("11:17: on_failure must be one of abort, ask, continue")


def test_gate_cannot_continue_on_failure(tmp_path: Path) -> None:
    text = with_fields("gate: true\non_failure: continue\n")

    position, message = only_problem(tmp_path, text)

    assert position == "11:17"
    assert_words(message, "a gate cannot continue on failure")


def test_gate_must_be_a_boolean(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("gate: yes please\n"))

    assert position == "10:11"
    assert_words(message, "gate must be true or false", "'yes please'")


def test_auto_confirm_in_drill_on_an_action_step(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("auto_confirm_in_drill: true\n"))

    assert position == "10:28"
    assert_words(message, "auto_confirm_in_drill applies to manual and approval steps only")


def test_unknown_milestone(tmp_path: Path) -> None:
    text = MINIMAL.replace("marks: service_restored", "marks: [service_restored, restore_begun]")

    position, message = only_problem(tmp_path, text)

    assert position == "9:31"
    assert_words(
        message,
        "unknown milestone 'restore_begun'",
        "did you mean 'restore_started'?",
        "(known: impact_start, declared",
    )


def test_unknown_mode(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("when: {modes: [dril]}\n"))

    assert position == "10:20"
    assert_words(message, "unknown mode 'dril'", "incident or drill", "did you mean 'drill'?")


def test_when_without_modes(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("when: {}\n"))

    assert position == "10:11"
    assert_words(message, "when needs `modes:")


# --- ids, needs and cycles --------------------------------------------------------------


def test_duplicate_step_id_names_the_first_line(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manual
          instructions: Reconnect traffic.
        - id: restore-kb
          kind: manual
          instructions: Check the restore.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "13:9"
    assert_words(message, "duplicate step id 'restore-kb'", "first at line 6")


def test_needs_unknown_step_suggests_the_closest(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manual
          instructions: Reconnect traffic.
          needs: [restore-k]
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "13:13"
    assert_words(message, "needs unknown step 'restore-k'", "did you mean 'restore-kb'?")


def test_step_cannot_need_itself(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manual
          instructions: Reconnect traffic.
          needs: [restore-kb, reconnect]
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "13:25"
    assert_words(message, "step 'reconnect' cannot need itself")


def test_cycle_is_reported_once_with_its_path(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: a
          kind: manual
          instructions: First.
          needs: [b]
        - id: b
          kind: manual
          instructions: Second.
          needs: [a]
        """
    )

    assert only_problem(tmp_path, text) == ("17:13", "steps form a cycle: a -> b -> a")


def test_longer_cycle_shows_every_step(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: a
          kind: manual
          instructions: First.
          needs: c
        - id: b
          kind: manual
          instructions: Second.
          needs: a
        - id: c
          kind: manual
          instructions: Third.
          needs: b
        """
    )

    assert only_problem(tmp_path, text) == ("17:12", "steps form a cycle: a -> c -> b -> a")


# --- the service_restored milestone -----------------------------------------------------


def test_no_step_marks_service_restored_reports_both_modes(tmp_path: Path) -> None:
    found = problems_of(tmp_path, MINIMAL.replace("    marks: service_restored\n", ""))

    assert len(found) == 2, found
    assert found[0].startswith("6:3: no step marks service_restored in mode incident")
    assert found[1].startswith("6:3: no step marks service_restored in mode drill")
    assert_words(found[0], "add `marks: service_restored`", "RTO clock")


def test_no_step_marks_service_restored_in_one_mode(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("when: {modes: [incident]}\n"))

    assert position == "6:3"
    assert_words(message, "no step marks service_restored in mode drill")


def test_two_steps_mark_service_restored_in_both_modes(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: reconnect
          kind: manual
          instructions: Reconnect traffic.
          marks: [declared, service_restored]
        """
    )

    assert problems_of(tmp_path, text) == [
        "13:12: steps 'restore-kb' and 'reconnect' both mark service_restored in mode "
        "incident; exactly one may",
        "13:12: steps 'restore-kb' and 'reconnect' both mark service_restored in mode "
        "drill; exactly one may",
    ]


def test_drill_only_marker_conflicts_only_in_drill(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: golden
          action: command
          with: {argv: [./golden.sh]}
          when: {modes: [drill]}
          marks: service_restored
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "14:12"
    assert_words(
        message, "steps 'restore-kb' and 'golden' both mark service_restored in mode drill"
    )
    assert "incident" not in message


# --- secrets ----------------------------------------------------------------------------

LITERAL = "hunter2-s3cr3t-value"


def test_literal_token_in_target_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(
        tmp_path, with_top(f"target: {{engine: chroma, url: http://h:8000, token: {LITERAL}}}\n")
    )

    with pytest.raises(RunbookError) as caught:
        load_runbook(path)

    assert caught.value.problems == [
        f"{path}:5:53: target.token must be a credential reference "
        "(keyring:SERVICE/NAME, env:VARIABLE or file:PATH), not a literal secret"
    ]
    assert LITERAL not in str(caught.value)
    assert LITERAL not in (caught.value.hint or "")


def test_literal_credentials_in_catalog_are_refused_without_echoing_them(tmp_path: Path) -> None:
    text = with_top(f'catalog: {{url: s3://b/kb, credentials: "{LITERAL}"}}\n')

    position, message = only_problem(tmp_path, text)

    assert position == "5:40"
    assert_words(message, "catalog.credentials must be a credential reference", "literal secret")
    assert LITERAL not in message


@pytest.mark.parametrize(
    ("section", "column", "what"),
    [
        (f"catalog: {{url: 's3://AKIA:{LITERAL}@bucket/kb'}}", 16, "catalog.url"),
        (
            f"catalog: {{url: s3://b/kb, endpoint: 'https://admin:{LITERAL}@s3.internal'}}",
            37,
            "catalog.endpoint",
        ),
        (f"target: {{engine: chroma, url: 'http://root:{LITERAL}@chroma:8000'}}", 31, "target.url"),
    ],
    ids=["catalog-url", "catalog-endpoint", "target-url"],
)
def test_password_in_a_url_is_refused_without_echoing_it(
    tmp_path: Path, section: str, column: int, what: str
) -> None:
    position, message = only_problem(tmp_path, with_top(section + "\n"))

    assert position == f"5:{column}"
    assert_words(message, f"{what} contains a password", "keyring")
    assert LITERAL not in message


@pytest.mark.parametrize("name", ["API_TOKEN", "DB_PASSWORD", "aws_secret_access_key"])
def test_secret_looking_env_name_with_a_literal_value_is_refused(tmp_path: Path, name: str) -> None:
    text = MINIMAL.replace(
        "{argv: [restore-kb]}", f"{{argv: [restore-kb], env: {{{name}: {LITERAL}}}}}"
    )

    position, message = only_problem(tmp_path, text)

    assert position == "8:37"
    assert_words(message, f"with.env {name!r} looks like a secret", "keyring:", f"env:{name}")
    assert LITERAL not in message


@pytest.mark.parametrize("value", ["env:DB_PASSWORD", "keyring:drconsole/db-password"])
def test_secret_looking_env_name_with_a_reference_is_accepted(tmp_path: Path, value: str) -> None:
    text = MINIMAL.replace(
        "{argv: [restore-kb]}",
        f"{{argv: [restore-kb], env: {{DB_PASSWORD: '{value}', LOG_LEVEL: debug}}}}",
    )

    step = load(tmp_path, text).step("restore-kb")

    assert step.params["env"] == {"DB_PASSWORD": value, "LOG_LEVEL": "debug"}


# --- placeholders -----------------------------------------------------------------------


def test_placeholder_with_unknown_root_is_located_inside_a_block_scalar(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: resume
          kind: manual
          instructions: |
            Check the consumers first.
            Resume from {{ snapshots.checkpoint }} now.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "14:19"
    assert_words(
        message,
        "placeholder {{ snapshots.checkpoint }} starts with an unknown name",
        "use one of run, runbook, snapshot, target, catalog, objectives, step",
    )


def test_malformed_placeholder_is_located_inside_a_block_scalar(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: resume
          kind: manual
          instructions: |
            Check the consumers first.
              Then resume {{ snapshot id }} carefully.
        """
    )

    position, message = only_problem(tmp_path, text)

    assert position == "14:21"
    assert_words(message, "placeholder '{{ snapshot id }}' is not a dotted name")


def test_each_repeated_placeholder_is_located_at_its_own_place(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: resume
          kind: manual
          # {{ bad }} in a comment before the scalar is not the problem
          instructions: |
            {{ snapshot.id }} then {{ bad }} and {{ bad }}
        - id: again
          kind: manual
          instructions: "Again {{ bad }}"
        """
    )

    found = problems_of(tmp_path, text)

    assert [problem.split(": ")[0] for problem in found] == ["14:30", "14:44", "17:26"]
    assert all("placeholder {{ bad }} starts with an unknown name" in p for p in found)


STEP_WITH_A_BAD_PLACEHOLDER = with_steps(
    """\
    - id: resume
      kind: manual
      instructions: |
        Resume from {{ snapshots.checkpoint }} now.
    """
)


def test_placeholder_position_with_crlf_line_endings(tmp_path: Path) -> None:
    data = STEP_WITH_A_BAD_PLACEHOLDER.replace("\n", "\r\n").encode()

    position, message = only_problem(tmp_path, data)

    assert position == "13:19"
    assert_words(message, "placeholder {{ snapshots.checkpoint }}")


def test_placeholder_position_with_cr_line_endings(tmp_path: Path) -> None:
    data = STEP_WITH_A_BAD_PLACEHOLDER.replace("\n", "\r").encode()

    position, _ = only_problem(tmp_path, data)

    assert position == "13:19"


# --- every problem at once --------------------------------------------------------------


def test_every_problem_in_a_file_is_reported_at_once_sorted_by_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        schema: drconsole/runbook/v1
        id: kb-restore
        title: Restore the knowledge base
        objectives: {rto: soon}
        colections: [tickets]
        steps:
          - id: restore-kb
            action: comand
            with: {argv: [restore-kb]}
            marks: service_restored
          - id: reconnect
            kind: manual
            instructions: Reconnect {{ trafic.target }}.
            needs: [restore]
            timeout: 0s
            marks: service_restored
        """,
    )

    with pytest.raises(RunbookError) as caught:
        load_runbook(path)

    found = [problem.removeprefix(f"{path}:") for problem in caught.value.problems]
    assert [problem.split(": ")[0] for problem in found] == [
        "4:19",
        "5:1",
        "8:13",
        "13:29",
        "14:13",
        "15:14",
    ]
    assert_words(found[0], "objectives.rto", "'soon' is not a duration")
    assert_words(found[1], "unknown key 'colections'", "did you mean 'collections'?")
    assert_words(found[2], "unknown action 'comand'")
    assert_words(found[3], "placeholder {{ trafic.target }}")
    assert_words(found[4], "needs unknown step 'restore'", "did you mean 'restore-kb'?")
    assert_words(found[5], "timeout must be longer than zero")
    assert str(caught.value) == "6 problems in the runbook"
    assert caught.value.hint is not None


def test_a_single_problem_is_the_error_message(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "zzz: 1\n")

    with pytest.raises(RunbookError) as caught:
        load_runbook(path)

    assert str(caught.value) == f"{path}:10:1: unknown key 'zzz' in the runbook"


def test_explicit_int_tag_on_words_is_a_runbook_error(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("retries: {max: !!int three}\n"))

    assert position == "10:20"
    assert_words(message, "cannot read value 'three'")


# --- loader bugs found while writing these tests ----------------------------------------


def test_explicit_bool_tag_on_a_non_boolean_is_a_runbook_error(tmp_path: Path) -> None:
    position, message = only_problem(tmp_path, with_fields("gate: !!bool maybe\n"))

    assert position == "10:11"
    assert_words(message, "cannot read value 'maybe'")


@pytest.mark.parametrize("tag", ["!!int", "!!float"])
def test_explicit_number_tag_on_an_empty_value_is_a_runbook_error(tmp_path: Path, tag: str) -> None:
    position, message = only_problem(tmp_path, with_fields(f"retries: {{max: {tag} ''}}\n"))

    assert position == "10:20"
    assert_words(message, "cannot read value")


def test_huge_integer_param_is_a_runbook_error(tmp_path: Path) -> None:
    huge = "9" * 400
    text = MINIMAL.replace("{argv: [restore-kb]}", f"{{argv: [restore-kb], tail_lines: {huge}}}")

    position, message = only_problem(tmp_path, text)

    assert position == "8:44"
    assert_words(message, "with.tail_lines must be at most 1000")


def test_repeated_id_that_closes_a_cycle_is_a_runbook_error(tmp_path: Path) -> None:
    text = with_steps(
        """\
        - id: b
          kind: manual
          instructions: Second.
          needs: [a]
        - id: a
          kind: manual
          instructions: First.
        - id: a
          kind: manual
          instructions: First again.
          needs: [b]
        """
    )

    found = problems_of(tmp_path, text)

    assert any("duplicate step id 'a'" in problem for problem in found), found


def test_numeric_literal_token_is_not_echoed(tmp_path: Path) -> None:
    text = with_top("target: {engine: chroma, url: http://h:8000, token: 8675309123456}\n")

    position, message = only_problem(tmp_path, text)

    assert position == "5:53"
    assert "8675309123456" not in message


def test_list_value_under_a_secret_looking_env_name_is_not_echoed(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "{argv: [restore-kb]}", f"{{argv: [restore-kb], env: {{API_TOKEN: [{LITERAL}]}}}}"
    )

    position, message = only_problem(tmp_path, text)

    assert position == "8:37"
    assert LITERAL not in message


def test_env_name_with_a_line_break_keeps_the_problem_on_one_line(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "{argv: [restore-kb]}", '{argv: [restore-kb], env: {"LOG\\nLEVEL": [debug]}}'
    )

    position, _ = only_problem(tmp_path, text)  # checks each problem is one line

    assert position == "8:37"


def test_prefer_is_logical_unless_it_says_physical(tmp_path: Path) -> None:
    assert load(tmp_path, MINIMAL).prefer == "logical"
    assert load(tmp_path, MINIMAL + "prefer: physical\n").prefer == "physical"
    _, message = only_problem(tmp_path, MINIMAL + "prefer: fastest\n")
    assert_words(message, "prefer must be one of logical, physical")
