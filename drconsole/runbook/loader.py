"""Load a runbook file into a validated ``Runbook``, reporting every problem at once."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from drconsole.actions.registry import BUILTIN, ActionSpec
from drconsole.engines.adapter import EngineAdapter
from drconsole.engines.registry import adapters
from drconsole.errors import RunbookError
from drconsole.model.filters import FilterError, operators, parse_where
from drconsole.runbook.checks import (
    Problems,
    boolean,
    check_keys,
    choice,
    duration,
    mapping,
    reference,
    string,
    string_list,
    suggestion,
)
from drconsole.runbook.model import MODES, SCHEMA, Runbook, Step
from drconsole.runbook.steps import StepReader
from drconsole.runbook.yamlsource import YamlProblem, YNode, decode, read_yaml

TOP_KEYS = (
    "schema",
    "id",
    "title",
    "owner",
    "description",
    "objectives",
    "catalog",
    "target",
    "source",
    "collections",
    "permissions",
    "golden",
    "filters",
    "prefer",
    "steps",
)
PREFER = ("logical", "physical")
RUNBOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SANDBOX_CATALOGS = ("s3",)
CATALOG_KEYS = (
    "url",
    "endpoint",
    "region",
    "credentials",
    "sandbox",
    "folder",
    "key",
    "allow_unsigned",
)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def load_runbook(path: str | Path, registry: dict[str, ActionSpec] | None = None) -> Runbook:
    """Read and validate a runbook; raises RunbookError listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunbookError([f"{path}: no such file"], "check the path to the runbook") from None
    except IsADirectoryError:
        raise RunbookError([f"{path}: is a folder, not a runbook file"]) from None
    except OSError as error:
        raise RunbookError([f"{path}: cannot read the file ({error.strerror})"]) from None
    return parse_runbook(data, path, registry)


def parse_runbook(
    data: bytes, path: Path, registry: dict[str, ActionSpec] | None = None
) -> Runbook:
    """Validate runbook bytes read from path (used for messages and relative paths)."""
    problems = Problems(str(path))
    try:
        text = decode(data)
        root = read_yaml(text)
    except YamlProblem as problem:
        problems.add(problem.position, problem.message)
        raise RunbookError(problems.lines(), _HINT) from None
    runbook = _Reader(problems, registry or BUILTIN, text).read(root, path.resolve(), data)
    if problems or runbook is None:
        raise RunbookError(problems.lines(), _HINT)
    return runbook


_HINT = "fix the lines above; `drconsole runbook validate FILE` checks a runbook without running it"


class _Reader:
    def __init__(self, problems: Problems, registry: dict[str, ActionSpec], text: str) -> None:
        self.problems = problems
        self.registry = registry
        self.text = text
        self.engine: EngineAdapter | None = None

    def read(self, root: YNode, path: Path, data: bytes) -> Runbook | None:
        fields = mapping(root, "the runbook", self.problems)
        if fields is None:
            return None
        check_keys(root, TOP_KEYS, "the runbook", self.problems, extensions=True)
        self._schema(fields, root)
        runbook_id = self._required_string(fields, root, "id")
        if runbook_id is not None and not RUNBOOK_ID.match(runbook_id):
            self.problems.add(
                fields["id"], "id must be letters, digits, '.', '_' or '-' (at most 64)"
            )
        title = self._required_string(fields, root, "title")
        rto, rpo = self._objectives(fields, root)
        catalog = self._catalog(fields.get("catalog"))
        target = self._target(fields.get("target"))
        source = self._source_section(fields.get("source"))
        collections = self._collections(fields.get("collections"))
        permissions = self._permissions(fields.get("permissions"))
        golden = string(fields.get("golden"), "golden", self.problems)
        prefer = string(fields.get("prefer"), "prefer", self.problems) or "logical"
        if prefer not in PREFER:
            self.problems.add(fields["prefer"], f"prefer must be one of {', '.join(PREFER)}")
        self.engine = adapters().get(target.get("engine") or "")
        filters = self._filters(fields.get("filters"))
        owner = string(fields.get("owner"), "owner", self.problems)
        description = string(fields.get("description"), "description", self.problems)
        steps = self._steps(fields, root, {"catalog": catalog, "target": target})
        if self.problems or runbook_id is None or title is None:
            return None
        return Runbook(
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            id=runbook_id,
            title=title,
            owner=owner,
            description=description,
            rto_s=rto,
            rpo_s=rpo,
            catalog=catalog,
            target=target,
            source=source,
            collections=tuple(collections),
            permissions=permissions,
            golden=golden,
            filters=tuple(filters),
            steps=tuple(steps),
            prefer=prefer,
            extensions={k: v.plain() for k, v in fields.items() if k.startswith("x-")},
        )

    def _schema(self, fields: dict[str, YNode], root: YNode) -> None:
        if "schema" not in fields:
            self.problems.add(root, f"missing `schema: {SCHEMA}` (first line of every runbook)")
            return
        value = fields["schema"].value
        if value != SCHEMA:
            self.problems.add(
                fields["schema"], f"unsupported schema {value!r}: this drconsole reads {SCHEMA}"
            )

    def _required_string(self, fields: dict[str, YNode], root: YNode, key: str) -> str | None:
        if key not in fields:
            self.problems.add(root, f"missing `{key}`")
            return None
        return string(fields[key], key, self.problems)

    def _objectives(
        self, fields: dict[str, YNode], root: YNode
    ) -> tuple[float | None, float | None]:
        node = fields.get("objectives")
        if node is None:
            self.problems.add(
                root,
                "missing `objectives: {rto: ..., rpo: ...}`: the targets a run is measured on",
            )
            return None, None
        values = mapping(node, "objectives", self.problems)
        if values is None:
            return None, None
        check_keys(node, ("rto", "rpo"), "objectives", self.problems)
        if "rto" not in values:
            self.problems.add(node, "objectives needs `rto`, the recovery time objective (like 1h)")
        rto = duration(values.get("rto"), "objectives.rto", self.problems)
        rpo = duration(values.get("rpo"), "objectives.rpo", self.problems)
        return rto, rpo

    def _catalog(self, node: YNode | None) -> dict[str, Any]:
        """``url`` (a folder or ``s3://``, with endpoint, region, credentials), or a
        sandbox S3: ``sandbox: s3`` serving ``folder`` with the catalog at ``url``."""
        values = mapping(node, "catalog", self.problems)
        if values is None or node is None:
            return {}
        check_keys(node, CATALOG_KEYS, "catalog", self.problems)
        result: dict[str, Any] = {}
        if (url := string(values.get("url"), "catalog.url", self.problems)) is not None:
            result["url"] = self._url_without_password(values["url"], url, "catalog.url")
        for key in ("endpoint", "region"):
            if (text := string(values.get(key), f"catalog.{key}", self.problems)) is not None:
                result[key] = self._url_without_password(values[key], text, f"catalog.{key}")
        if (
            ref := reference(values.get("credentials"), "catalog.credentials", self.problems)
        ) is not None:
            result["credentials"] = ref
        if (key := reference(values.get("key"), "catalog.key", self.problems)) is not None:
            result["key"] = key
        unsigned = boolean(values.get("allow_unsigned"), "catalog.allow_unsigned", self.problems)
        if unsigned is not None:
            result["allow_unsigned"] = unsigned
        if "sandbox" not in values:
            if "url" not in values:
                self.problems.add(node, "catalog needs `url`: a folder or s3://BUCKET/PREFIX")
            if "folder" in values:
                self.problems.add(values["folder"], "catalog.folder goes with `sandbox: s3` only")
            return result
        sandbox = choice(values["sandbox"], "catalog.sandbox", SANDBOX_CATALOGS, self.problems)
        if sandbox is not None:
            result["sandbox"] = sandbox
        if (folder := string(values.get("folder"), "catalog.folder", self.problems)) is not None:
            result["folder"] = folder
        if "folder" not in values or not str(result.get("url", "")).startswith("s3://"):
            self.problems.add(
                node,
                "catalog with `sandbox: s3` needs `folder` (where the sandbox keeps its data) "
                "and `url: s3://BUCKET/PREFIX` (the catalog inside it)",
            )
        for key in ("endpoint", "region", "credentials"):
            if key in values:
                self.problems.add(
                    values[key], f"catalog.{key} does not go with `sandbox`: the sandbox sets it"
                )
        return result

    def _target(self, node: YNode | None) -> dict[str, Any]:
        values = mapping(node, "target", self.problems)
        if values is None or node is None:
            return {}
        engines = adapters()
        sandboxes = tuple(name for name, adapter in engines.items() if adapter.sandbox_entry)
        result: dict[str, Any] = {}
        self._source(node, values, result, "target", sandboxes)
        engine = choice(values.get("engine"), "target.engine", tuple(engines), self.problems)
        if "url" in result and "engine" not in values:
            self.problems.add(node, f"target needs `engine` ({', '.join(engines)})")
        result["engine"] = engine or result.get("sandbox") or None
        options = self._options(result["engine"])
        check_keys(node, ("engine", "url", "token", "sandbox", *options), "target", self.problems)
        for key in options:
            if (text := string(values.get(key), f"target.{key}", self.problems)) is not None:
                result[key] = text
        if (ref := reference(values.get("token"), "target.token", self.problems)) is not None:
            result["token"] = ref
        return result

    def _options(self, engine: str | None, namespace_only: bool = False) -> tuple[str, ...]:
        """The target (or source) keys of an engine: its adapter's options; every
        installed adapter's when the engine is not known."""
        engines = adapters()
        chosen = [engines[engine]] if engine in engines else list(engines.values())
        names = [
            option.name
            for adapter in chosen
            for option in adapter.options
            if option.namespace or not namespace_only
        ]
        return tuple(dict.fromkeys(names))

    def _source_section(self, node: YNode | None) -> dict[str, str]:
        """Whose snapshots this runbook restores: engine and namespace (default: the
        target's, unless the target is a sandbox)."""
        values = mapping(node, "source", self.problems)
        if values is None or node is None:
            return {}
        engines = tuple(adapters())
        result: dict[str, str] = {}
        if engine := choice(values.get("engine"), "source.engine", engines, self.problems):
            result["engine"] = engine
        options = self._options(engine, namespace_only=True)
        check_keys(node, ("engine", *options), "source", self.problems)
        for key in options:
            if (text := string(values.get(key), f"source.{key}", self.problems)) is not None:
                result[key] = text
        return result

    def _source(
        self,
        node: YNode,
        values: dict[str, YNode],
        result: dict[str, Any],
        where: str,
        sandboxes: tuple[str, ...],
    ) -> None:
        """``url`` or ``sandbox`` (exactly one) of a catalog or a target."""
        if ("url" in values) == ("sandbox" in values):
            self.problems.add(node, f"{where} needs exactly one of `url` or `sandbox`")
        if (url := string(values.get("url"), f"{where}.url", self.problems)) is not None:
            result["url"] = self._url_without_password(values["url"], url, f"{where}.url")
        sandbox = choice(values.get("sandbox"), f"{where}.sandbox", sandboxes, self.problems)
        if sandbox is not None:
            result["sandbox"] = sandbox

    def _url_without_password(self, node: YNode, url: str, what: str) -> str:
        if _URL_PASSWORD.match(url):
            self.problems.add(
                node, f"{what} contains a password: put it in the keyring and use a reference"
            )
        return url

    def _collections(self, node: YNode | None) -> list[str]:
        names: list[str] = []
        for name, item in string_list(node, "collections", self.problems) or []:
            if name in names:
                self.problems.add(item, f"collection {name!r} is listed twice")
            else:
                names.append(name)
        return names

    def _permissions(self, node: YNode | None) -> dict[str, Any]:
        values = mapping(node, "permissions", self.problems)
        if values is None or node is None:
            return {}
        check_keys(
            node,
            (
                "tenant_field",
                "acl_field",
                "principals",
                "require_fields",
                "tenant_role",
                "tenant_setting",
            ),
            "permissions",
            self.problems,
        )
        result: dict[str, Any] = {}
        for key in ("tenant_field", "acl_field", "tenant_role", "tenant_setting"):
            if (text := string(values.get(key), f"permissions.{key}", self.problems)) is not None:
                result[key] = text
        required = boolean(
            values.get("require_fields"), "permissions.require_fields", self.problems
        )
        if required is not None:
            result["require_fields"] = required
        principals = string_list(values.get("principals"), "permissions.principals", self.problems)
        if principals is not None:
            result["principals"] = [name for name, _ in principals]
        return result

    def _filters(self, node: YNode | None) -> list[dict[str, Any]]:
        """The metadata filters the application uses: ``{name, where, collections}``."""
        if node is None:
            return []
        if not node.is_sequence:
            self.problems.add(node, "filters must be a list of {name, where, collections}")
            return []
        found: list[dict[str, Any]] = []
        for item in node.value:
            values = mapping(item, "each filter", self.problems)
            if values is None:
                continue
            check_keys(item, ("name", "where", "collections"), "a filter", self.problems)
            name = string(values.get("name"), "filter name", self.problems)
            if name is None and "name" not in values:
                self.problems.add(item, "a filter needs a name")
            if name is not None and any(existing["name"] == name for existing in found):
                self.problems.add(values["name"], f"filter {name!r} is listed twice")
            where_node = values.get("where")
            if where_node is None:
                self.problems.add(item, "a filter needs `where`, e.g. where: {lang: en}")
                continue
            where = where_node.plain()
            for problem in self._filter_problems(where):
                self.problems.add(where_node, f"filter {name or '?'}: {problem}")
            collections = string_list(
                values.get("collections"), "filter collections", self.problems
            )
            if name is not None:
                chosen = [collection for collection, _ in collections] if collections else []
                found.append({"name": name, "where": where, "collections": chosen})
        return found

    def _filter_problems(self, where: Any) -> list[str]:
        """What is wrong with a filter, or what of it the target engine cannot run."""
        try:
            tree = parse_where(where)
        except FilterError as error:
            return error.problems
        if self.engine is None:
            return []
        if missing := self.engine.unsupported_operators(operators(tree)):
            return [
                f"the {self.engine.title} engine cannot run "
                f"{', '.join(missing)} (it runs {', '.join(sorted(self.engine.filter_operators))})"
            ]
        return []

    def _steps(
        self, fields: dict[str, YNode], root: YNode, sections: dict[str, dict[str, Any]]
    ) -> list[Step]:
        node = fields.get("steps")
        if node is None:
            self.problems.add(root, "missing `steps`: the list of what to do, in restore order")
            return []
        if not node.is_sequence or not node.value:
            self.problems.add(node, "steps must be a non-empty list")
            return []
        reader = StepReader(self.registry, self.problems, self.text)
        steps = [
            step for index, item in enumerate(node.value) if (step := reader.read(item, index))
        ]
        unique = self._unique_ids(reader)
        self._needs(reader, unique)
        self._cycles(reader)
        if len(steps) == len(node.value):  # a step that did not load may be the one that marks it
            self._service_restored(steps, reader, node)
        self._requirements(steps, sections)
        return steps

    def _unique_ids(self, reader: StepReader) -> set[str]:
        first: dict[str, YNode] = {}
        for step_id, node in reader.id_nodes:
            if step_id in first:
                self.problems.add(
                    node,
                    f"duplicate step id {step_id!r} (first at line {first[step_id].position.line})",
                )
            else:
                first[step_id] = node
        return set(first)

    def _needs(self, reader: StepReader, ids: set[str]) -> None:
        for step_id, needs in reader.need_nodes.items():
            for name, item in needs:
                if name == step_id:
                    self.problems.add(item, f"step {step_id!r} cannot need itself")
                elif name not in ids:
                    self.problems.add(item, f"needs unknown step {name!r}{suggestion(name, ids)}")

    def _cycles(self, reader: StepReader) -> None:
        graph = {
            step_id: [name for name, _ in needs if name != step_id]
            for step_id, needs in reader.need_nodes.items()
        }
        state: dict[str, int] = {}
        reported: set[frozenset[str]] = set()

        def visit(step_id: str, trail: list[str]) -> None:
            state[step_id] = 1
            for need in graph.get(step_id, []):
                if need not in graph:
                    continue
                if state.get(need) == 1:
                    cycle = [*trail[trail.index(need) :], need]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        where = next(
                            item for name, item in reader.need_nodes[step_id] if name == need
                        )
                        self.problems.add(where, "steps form a cycle: " + " -> ".join(cycle))
                elif need not in state:
                    visit(need, [*trail, need])
            state[step_id] = 2

        for step_id in graph:
            if step_id not in state:
                visit(step_id, [step_id])

    def _service_restored(self, steps: list[Step], reader: StepReader, steps_node: YNode) -> None:
        for mode in MODES:
            marking = [s for s in steps if s.runs_in(mode) and "service_restored" in s.marks]
            if not marking:
                self.problems.add(
                    steps_node,
                    f"no step marks service_restored in mode {mode}: add `marks: service_restored` "
                    "to the step after which the service is back (it stops the RTO clock)",
                )
            for extra in marking[1:]:
                self.problems.add(
                    reader.mark_nodes[extra.position],
                    f"steps {marking[0].id!r} and {extra.id!r} both mark service_restored in mode "
                    f"{mode}; exactly one may",
                )

    def _requirements(self, steps: list[Step], sections: dict[str, dict[str, Any]]) -> None:
        for step in steps:
            spec = self.registry.get(step.action or "")
            for section in spec.requires if spec else ():
                if not sections.get(section):
                    self.problems.add(
                        step.position,
                        f"action {step.action} needs the runbook's `{section}` section",
                    )
            if spec is None or self.engine is None:
                continue
            for capability in spec.capabilities_needed(step.params):
                if not self.engine.can(capability):
                    self.problems.add(
                        step.position,
                        f"step {step.id!r} ({step.action}) needs {capability.describe()}, "
                        f"which the {self.engine.title} engine cannot do",
                    )
