"""Adapters are found through the ``drconsole.engines`` entry point group (a third-party
package adds one without touching drconsole), and what an adapter declares decides what
a runbook may ask of its engine: the loader refuses, with file and line, a step or a
filter the target engine cannot run."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from drconsole.engines import registry
from drconsole.errors import RunbookError, UsageError
from drconsole.runbook.loader import load_runbook

from helpers import run_cli


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch):
    """The installed adapters plus ``limited`` (from helpers) and one whose import fails."""
    installed = list(registry.entry_points(group=registry.GROUP))
    extra = [
        EntryPoint("limited", "helpers:LIMITED_ADAPTER", registry.GROUP),
        EntryPoint("broken", "no_such_package.adapter:ADAPTER", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: [*installed, *extra])
    registry.discovered.cache_clear()
    yield
    registry.discovered.cache_clear()


def test_drconsole_s_own_adapters_are_installed_through_the_entry_point() -> None:
    result = run_cli("engines", "--json")
    assert result.returncode == 0, result.stderr
    listed = {engine["name"]: engine for engine in json.loads(result.stdout)["engines"]}
    assert set(listed) >= {"chroma", "memory"}
    assert "rename" in listed["chroma"]["capabilities"]
    assert listed["chroma"]["sandbox"] and listed["memory"]["in_process"]
    assert "real server" in listed["chroma"]["tested_against"]


def test_a_third_party_adapter_is_found_and_a_broken_one_named(third_party) -> None:
    adapters, broken = registry.discovered()
    assert adapters["limited"].title == "Limited"
    assert "no_such_package" in broken["broken"]
    with pytest.raises(UsageError, match="could not be loaded"):
        registry.engine_adapter("broken")
    with pytest.raises(UsageError, match="unknown engine 'nope'") as unknown:
        registry.engine_adapter("nope")
    assert "limited" in unknown.value.hint


def _runbook(tmp_path: Path, engine: str, steps: str, filters: str = "") -> Path:
    path = tmp_path / "runbook.yaml"
    text = f"""\
        schema: drconsole/runbook/v1
        id: kb
        title: Restore
        objectives: {{rto: 1h, rpo: 1d}}
        catalog: {{url: {tmp_path}}}
        target: {{engine: {engine}, url: "memory://kb"}}
        {filters}
        steps:
          - id: verify
            action: verify_chain
{textwrap.indent(textwrap.dedent(steps), "          ")}
    """
    path.write_text(textwrap.dedent(text))
    return path


STAGING = """\
- id: schema
  action: restore_schema
  with: {into: staging}
  marks: service_restored
- id: cutover
  action: cutover
"""


def test_steps_the_engine_cannot_perform_are_refused_at_load_time(
    tmp_path: Path, third_party
) -> None:
    path = _runbook(tmp_path, "limited", STAGING)
    with pytest.raises(RunbookError) as refused:
        load_runbook(path)
    problems = refused.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{path}:11:")
    assert "'schema' (restore_schema) needs renaming a collection" in problems[0]
    assert problems[1].startswith(f"{path}:15:")
    assert "'cutover' (cutover)" in problems[1] and "Limited engine cannot" in problems[1]
    assert load_runbook(_runbook(tmp_path, "memory", STAGING)).target["engine"] == "memory"


def test_filters_the_engine_cannot_run_are_refused_with_their_line(
    tmp_path: Path, third_party
) -> None:
    filters = textwrap.dedent("""\
        filters:
          - {name: english, where: {lang: en}}
          - {name: recent, where: {year: {$gte: 2020}}}
          - {name: either, where: {$or: [{lang: en}, {lang: de}]}}
    """).replace("\n", "\n        ")
    steps = "- id: done\n  action: check_counts\n  marks: service_restored\n"
    path = _runbook(tmp_path, "limited", steps, filters)
    with pytest.raises(RunbookError) as refused:
        load_runbook(path)
    problems = refused.value.problems
    assert [problem.split(":")[1] for problem in problems] == ["9", "10"], problems
    assert "filter recent: the Limited engine cannot run gte" in problems[0]
    assert "filter either: the Limited engine cannot run or" in problems[1]
    assert load_runbook(_runbook(tmp_path, "memory", steps, filters)).filters


def test_target_keys_are_the_engine_s_own_options(tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(
        "schema: drconsole/runbook/v1\nid: kb\ntitle: t\nobjectives: {rto: 1h, rpo: 1d}\n"
        'target: {engine: memory, url: "memory://x", tenant: acme}\n'
        "steps:\n  - {id: a, kind: manual, instructions: go, marks: service_restored}\n"
    )
    with pytest.raises(RunbookError) as refused:
        load_runbook(path)
    assert any("tenant" in problem for problem in refused.value.problems), refused.value.problems


def test_a_flag_of_another_engine_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "snapshot",
        "create",
        "--engine",
        "memory",
        "--url",
        "memory://x",
        "--tenant",
        "acme",
        "--collections",
        "kb",
        "--catalog",
        str(tmp_path / "catalog"),
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --tenant does not apply to the memory engine",
        "hint: its options: --database",
    ]


def test_golden_queries_the_engine_cannot_filter_fail_the_step_naming_them(
    tmp_path: Path, third_party
) -> None:
    """The golden file is read when its step runs: a query whose filter the target engine
    cannot run fails the step by id, on the limited engine, and runs on the reference."""
    from drconsole.corpus import CorpusSpec
    from drconsole.engines import open_engine
    from drconsole.engines.memory.engine import forget

    from chroma_restore import run_drill, seed, snapshot

    source = {"engine": "memory", "url": "memory://golden-source", "database": "prod"}
    forget(source["url"])
    engine = open_engine(source)
    engine.ensure_namespace()
    seed(engine, "kb", CorpusSpec("kb", 50, dimension=4))
    snapshot(engine, tmp_path / "catalog", ["kb"], signed=False)
    vector = [0.5, 0.5, 0.5, 0.5]
    queries = [
        {"id": "plain", "collection": "kb", "k": 3, "vector": vector, "expected": []},
        {
            "id": "in-list",
            "collection": "kb",
            "k": 3,
            "vector": vector,
            "filter": {"tenant_id": {"$in": ["acme", "globex"]}},
            "expected": [],
        },
    ]
    (tmp_path / "golden.json").write_text(
        json.dumps({"format": "drconsole-golden/1", "queries": queries})
    )
    for name, options, passes in (("limited", "", False), ("memory", ", database: prod", True)):
        forget(f"memory://{name}")
        runbook = tmp_path / f"{name}.yaml"
        runbook.write_text(
            textwrap.dedent(f"""\
                schema: drconsole/runbook/v1
                id: golden-{name}
                title: Golden
                objectives: {{rto: 1h, rpo: 1d}}
                catalog: {{url: {tmp_path / "catalog"}, allow_unsigned: true}}
                target: {{engine: {name}, url: "memory://{name}"{options}}}
                source: {{engine: memory, database: prod}}
                golden: golden.json
                steps:
                  - {{id: verify, action: verify_chain, gate: true}}
                  - {{id: schema, action: restore_schema, needs: [verify]}}
                  - {{id: data, action: restore_data, needs: [schema], marks: service_restored}}
                  - {{id: golden, action: golden_queries, needs: [data], with: {{min_recall: 0}}}}
            """)
        )
        result = run_drill(runbook, tmp_path / f"runs-{name}")
        if passes:
            assert result.exit_code == 0, result.message
        else:
            assert result.exit_code == 1
            assert "1 golden query uses filter operators the Limited engine cannot run" in (
                result.message
            ), result.message
            assert "in-list (in)" in result.message


def test_drconsole_engines_names_an_adapter_it_cannot_load_and_exits_1(
    third_party, capsys: pytest.CaptureFixture[str]
) -> None:
    from argparse import Namespace

    from drconsole.commands.engines_cmd import engines_command

    assert engines_command(Namespace(json=True)) == 1
    listed = json.loads(capsys.readouterr().out)
    assert "no_such_package" in listed["broken"]["broken"]
    assert "limited" in {engine["name"] for engine in listed["engines"]}


def test_a_sandbox_drill_of_an_engine_without_a_sandbox_is_refused_in_two_lines(
    tmp_path: Path,
) -> None:
    runbook = tmp_path / "runbook.yaml"
    runbook.write_text(
        "schema: drconsole/runbook/v1\nid: kb\ntitle: t\nobjectives: {rto: 1h, rpo: 1d}\n"
        'target: {engine: memory, url: "memory://x"}\n'
        "steps:\n  - {id: a, kind: manual, instructions: go, marks: service_restored}\n"
    )
    runs = tmp_path / "runs"
    refused = run_cli("drill", str(runbook), "--sandbox", "--runs-dir", str(runs))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines()[0] == (
        "error: --sandbox: the runbook's engine, memory, has no sandbox server to start"
    )
    assert not runs.exists() or not any(runs.iterdir()), "no run was started"


def test_an_engine_whose_library_is_missing_says_which_extra_to_install() -> None:
    """The declaration loads without the engine's libraries; opening the engine without
    them is one usage error naming the library and the extra, not a traceback."""
    from dataclasses import replace

    from drconsole.engines.pgvector import ADAPTER

    missing = replace(ADAPTER, engine_entry="no_such_driver_for_tests.engine:open_it")
    with pytest.raises(UsageError) as refused:
        missing.open("postgresql://u@127.0.0.1:1/db", {}, None)
    assert refused.value.message == (
        "the PostgreSQL (pgvector) engine needs no_such_driver_for_tests, which is not installed"
    )
    assert refused.value.hint == "install it: pip install 'drconsole[pgvector]'"
