"""Hostile input gets a clear refusal, never a traceback: the cases found by testing (a
golden set whose source is not an object, 100,000-deep JSON, an .npy header claiming
36 TiB, a 5,000-character path, a non-UTF-8 argument), then fuzzing (hypothesis, bounded
and seeded) over golden files, state files, snapshot parts and command lines. On the
command line: exit code 2 with one clear line, within 10 s and 1 GiB."""

from __future__ import annotations

import contextlib
import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drconsole.catalog import columnar, parts
from drconsole.catalog.state import decode_state
from drconsole.errors import DrconsoleError
from drconsole.golden import load_golden
from drconsole.model.schema import CollectionSchema

DEEP = b"[" * 100_000 + b"]" * 100_000
SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
    "os.execv(sys.executable, [sys.executable, '-m', 'drconsole.cli', *sys.argv[1:]])"
)
"""The limit is set by the child itself, then it becomes drconsole: a ``preexec_fn``
would run in a fork of this test worker, which may have gRPC loaded (the Milvus
tests), whose fork handlers then abort under the limit."""


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """drconsole in a subprocess held to 1 GiB of memory and 10 s."""
    return subprocess.run(
        [sys.executable, "-c", LIMITED, *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=10,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        check=False,
    )


def _refused_clearly(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and ": " in lines[0]


def _npy_claiming(rows: int, dimension: int) -> bytes:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dimension}), }}"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64


def _golden(tmp_path: Path, raw: object, vectors: bytes | None = None) -> Path:
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(raw))
    if vectors is not None:
        (tmp_path / "kb.npy").write_bytes(vectors)
    return path


QUERY = {"id": "q1", "collection": "kb", "k": 1, "expected": ["a"], "vector_row": 0}


@pytest.mark.parametrize(
    ("raw", "vectors", "problem"),
    [
        ({"format": "drconsole-golden/1", "queries": [], "source": "prod"}, None, "source"),
        (
            {"format": "drconsole-golden/1", "vectors": "kb.npy", "queries": [QUERY]},
            _npy_claiming(100_000_000, 100_000),
            "header claims",
        ),
    ],
)
def test_hostile_golden_sets_are_refused(
    tmp_path: Path, raw: object, vectors: bytes | None, problem: str
) -> None:
    with pytest.raises(DrconsoleError, match=problem):
        load_golden(_golden(tmp_path, raw, vectors))


def test_deep_json_is_refused_everywhere_it_is_read(tmp_path: Path) -> None:
    golden = tmp_path / "deep.json"
    golden.write_bytes(DEEP)
    with pytest.raises(DrconsoleError, match=r"nests too deeply|cannot read"):
        load_golden(golden)
    with pytest.raises(ValueError):
        decode_state(gzip.compress(DEEP))
    with pytest.raises(ValueError):
        parts.decode_records(gzip.compress(DEEP))
    runbook = tmp_path / "deep.yaml"
    runbook.write_bytes(DEEP)
    _refused_clearly(_cli("runbook", "validate", str(runbook)))
    catalog = tmp_path / "catalog" / "snapshots" / "x"
    catalog.mkdir(parents=True)
    (catalog / "manifest.json").write_bytes(DEEP)
    listed = _cli("catalog", "list", str(tmp_path / "catalog"), "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert json.loads(listed.stdout)["invalid"][0]["id"] == "x"


def test_a_part_claiming_terabytes_is_refused_unread() -> None:
    with pytest.raises(ValueError, match="bytes of data"):
        parts.decode_vectors(_npy_claiming(100_000_000, 100_000), 100_000)


@pytest.mark.parametrize(
    "argv",
    [
        ["catalog", "list", "x" * 5000 + ".yaml"],
        ["catalog", "verify", "/" + "y" * 5000],
        ["runbook", "validate", "z" * 5000],
        ["runs", "list", "--runs-dir", "r" * 5000],
        ["drill", "q" * 5000 + ".yaml"],
        ["catalog", "list", "bad\udcffname"],
        ["snapshot", "create", "--url", "http://x", "--collections", "\udcff", "--catalog", "c"],
    ],
)
def test_long_paths_and_broken_text_are_refused_in_one_line(argv: list[str]) -> None:
    _refused_clearly(_cli(*argv))


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_part_of_either_format_raise_only_value_error(data: bytes) -> None:
    for decode in (decode_state, parts.decode_records, parts.decode_deletes):
        for blob in (data, gzip.compress(data)):
            with contextlib.suppress(ValueError):
                decode(blob)
    with contextlib.suppress(ValueError):
        parts.decode_vectors(data, 4)
    for blob in (data, b"PAR1" + data + b"PAR1", data + columnar.encode_deletes(["a"], [None])):
        for decode_part in (
            lambda b: list(columnar.records_of(b, CollectionSchema.dense(4, "l2"))),
            columnar.decode_deletes,
            columnar.decode_state,
        ):
            with contextlib.suppress(ValueError):
                decode_part(blob)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {"format": st.sampled_from(["drconsole-golden/1", "x"]), "queries": json_values},
        optional={"source": json_values, "vectors": json_values, "created_at": json_values},
    ),
    st.binary(max_size=300),
)
def test_any_golden_set_loads_or_is_refused_clearly(
    tmp_path: Path, raw: dict, vectors: bytes
) -> None:
    try:
        load_golden(_golden(tmp_path, raw, vectors))
    except DrconsoleError as error:
        assert error.message


COMMANDS = [
    ["catalog", "list"],
    ["catalog", "show"],
    ["catalog", "verify"],
    ["catalog", "prune", "--keep-last", "1", "--dry-run"],
    ["runbook", "validate"],
    ["runbook", "show"],
    ["runs", "show"],
    ["runs", "verify"],
    ["runs", "export", "--format", "md"],
    ["secrets", "delete"],
]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=6000),
    st.sampled_from(["", "-", "--", "s3://", "s3:///x", "file://", "latest", "../..", "\x00"]),
)


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(COMMANDS), st.lists(hostile_text, min_size=1, max_size=3))
def test_hostile_command_lines_never_end_in_a_traceback(
    tmp_path: Path, command: list[str], extra: list[str]
) -> None:
    arguments = [item.replace("\x00", "") for item in extra]
    result = _cli(*command, *arguments, "--runs-dir", str(tmp_path / "runs"))
    assert "Traceback" not in result.stderr, result.stderr[-800:]
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr[-500:])
    if result.returncode == 2:
        assert result.stderr.lstrip().startswith(("error:", "usage:", "drconsole:")) or (
            ":" in result.stderr.splitlines()[0]
        )
    assert np.isfinite(len(result.stdout))


@pytest.mark.parametrize(
    ("argv", "instead"),
    [(["tui"], "drconsole drill RUNBOOK"), (["demo"], "drconsole demo --headless")],
)
def test_the_console_refuses_anything_but_a_terminal(argv: list[str], instead: str) -> None:
    result = _cli(*argv)
    _refused_clearly(result)
    assert "needs a terminal" in result.stderr and instead in result.stderr
    assert result.stdout == "", "no escape codes written to the pipe"
