"""The catalog: chains as a tree, the selected snapshot's details, verify and restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, ProgressBar, Static
from textual.worker import Worker

from drconsole.catalog.catalog import CatalogView, ChainNode
from drconsole.catalog.manifest import KIND_LETTERS, Manifest
from drconsole.catalog.source import describe_source
from drconsole.catalog.verifications import Verification, keep_verification, last_verifications
from drconsole.catalog.verify import Depth, VerifyResult, verify
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_duration, format_utc
from drconsole.tui.messages import (
    CatalogLoaded,
    VerificationsLoaded,
    VerifyFinished,
    VerifyProgress,
)
from drconsole.tui.modals import ChoiceModal, HelpModal
from drconsole.tui.screen_base import ConsoleScreen
from drconsole.tui.snapshot_list import Row, SnapshotList
from drconsole.tui.widgets import help_keys
from drconsole.wording import plural

if TYPE_CHECKING:
    from drconsole.tui.app import DrconsoleApp

DEPTHS = [
    ("manifest", "manifest: structure and chain"),
    ("sizes", "sizes: every file and its size"),
    ("full", "full: hash every byte"),
    ("sample:10%", "sample:10%: hash a seeded 10% of the files"),
]


class CatalogScreen(ConsoleScreen):
    AUTO_FOCUS = "#snapshots"  # never the hidden filter input: it would swallow the keys
    BINDINGS = [
        Binding("v", "verify", "Verify", tooltip="verify the selected chain at a chosen depth"),
        Binding("r", "restore", "Restore", tooltip="start a run from the selected snapshot"),
        # priority: the app routes each key before the one before it has been handled, so
        # without it the keys typed right after / went to the list (k moved the cursor)
        Binding("slash", "filter", "Filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("t", "timeline", "Timeline"),
        Binding("f5", "reload", "Reload", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: CatalogView | None = None
        self.verified: dict[str, VerifyResult] = {}
        self.kept: dict[str, Verification] = {}
        self.broken: set[str] = set()

    @property
    def console(self) -> DrconsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="catalog-body"):
            with Vertical(id="chains"):
                yield Input(
                    placeholder="filter snapshots (id, collection)", id="filter", classes="hidden"
                )
                yield SnapshotList(empty="no snapshots in this catalog yet", id="snapshots")
            with VerticalScroll(id="details"):
                yield Static("loading the catalog…", id="details-text")
        yield ProgressBar(total=None, show_eta=False, id="verify-progress", classes="hidden")
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.console.services.catalog_label()
        self.action_reload()

    def action_reload(self) -> None:
        self.query_one("#status-line", Static).update("loading the catalog…")
        self.query_one("#details-text", Static).update("loading the catalog…")
        self.load()

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "catalog":
            text = "the catalog could not be loaded (see the message); f5 tries again"
            self.query_one("#status-line", Static).update(text)
            self.query_one("#details-text", Static).update(text)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="catalog",
        description="list the catalog",
    )
    def load(self) -> None:
        """The listing first (the screen fills at once), then the verifications the
        catalog keeps (one more read per snapshot)."""
        services = self.console.services
        view = services.load_catalog()
        self.post_message(CatalogLoaded(view))
        kept = last_verifications(services.open_store(), view, services.catalog_key())
        self.post_message(VerificationsLoaded(kept))

    @on(VerificationsLoaded)
    def show_verifications(self, message: VerificationsLoaded) -> None:
        self.kept = message.verifications
        self.query_one("#snapshots", SnapshotList).set_rows(self._rows())
        if (manifest := self.selected()) is not None:
            self.query_one("#details-text", Static).update(self._details(manifest))

    @on(CatalogLoaded)
    def show_catalog(self, message: CatalogLoaded) -> None:
        self.view = message.view
        self.broken = message.view.broken()
        newest = max(message.view.snapshots.values(), key=lambda m: m.recovery_point, default=None)
        self.query_one("#snapshots", SnapshotList).set_rows(
            self._rows(), select=newest.id if newest else None
        )
        count = len(message.view.snapshots)
        warning = (
            "  ⚠ local only: a disk failure can take the database and its backups together"
            if message.view.local
            else ""
        )
        extra = f", {len(message.view.unfinished)} unfinished" if message.view.unfinished else ""
        self.query_one("#status-line", Static).update(
            f"{plural(count, 'snapshot')}{extra}{warning}"
        )

    def _rows(self) -> list[Row]:
        """Chains in order, each full base followed by the incrementals built on it (a
        straight chain at one indent, a branch one deeper); then what cannot be restored."""
        view = self.view
        assert view is not None
        roots, orphans = view.trees()
        rows = [self._row(manifest, indent) for root in roots for manifest, indent in _laid(root)]
        if orphans:
            rows.append(Row.fixed(None, Text("hanging from no full base:", style="dim"), ""))
            rows.extend(self._row(manifest, 1) for manifest in orphans)
        for snapshot_id, problem in sorted(view.invalid.items()):
            text = Text(f"✗ {snapshot_id}  invalid manifest: {problem}", style="red")
            rows.append(Row.fixed(None, text, snapshot_id.lower()))
        for item in view.unfinished:
            text = Text(
                f"… {item.id}  unfinished ({plural(item.files, 'file')}), never restorable",
                style="dim",
            )
            rows.append(Row.fixed(None, text, item.id.lower()))
        return rows

    def _row(self, manifest: Manifest, indent: int) -> Row:
        search = " ".join(
            [manifest.id, describe_source(manifest.source), *(c.name for c in manifest.collections)]
        )
        return Row(manifest.id, search.lower(), lambda: self._label(manifest, indent))

    def _label(self, manifest: Manifest, indent: int) -> Text:
        """Status first (it must never be cut off), then kind, id, age against the RPO in
        words (colour alone does not survive a pipe or a colour-blind reader), size."""
        age = (self.console.services.clock() - manifest.recovery_point).total_seconds()
        rpo = self.console.services.rpo_s()
        checked = self.verified.get(manifest.id)
        kept = self.kept.get(manifest.id)
        if (
            manifest.id in self.broken
            or (checked and not checked.intact)
            or (checked is None and kept is not None and not kept.intact)
            or self._refusal(manifest)
        ):
            label = Text("✗ ", style="red")
        elif checked or (kept is not None and kept.authenticated):
            label = Text("✓ ", style="green")
        else:
            label = Text("· ", style="dim")
        label.append("  " * indent + f"{KIND_LETTERS[manifest.kind]} {manifest.id}  ")
        label.append(f"age {format_duration(age)}")
        if rpo is not None and age > rpo:
            label.append(" over RPO", style="red")
        label.append(f"  {format_bytes(manifest.size)}", style="dim")
        return label

    @on(SnapshotList.Highlighted)
    def show_details(self, event: SnapshotList.Highlighted) -> None:
        snapshot_id = event.key
        details = self.query_one("#details-text", Static)
        if self.view is None or snapshot_id not in self.view.snapshots:
            details.update(Text("select a snapshot", style="dim"))
            return
        details.update(self._details(self.view.snapshots[snapshot_id]))

    def _details(self, manifest: Manifest) -> Text:
        assert self.view is not None
        chain, findings = self.view.chain(manifest.id)
        text = Text()
        text.append(f"{manifest.id}\n", style="bold")
        text.append(f"{manifest.kind}, recovery point {format_utc(manifest.recovery_point)}\n")
        text.append(f"point in time  {manifest.point_in_time_note()}\n")
        if physical := manifest.physical_note():
            text.append(f"physical       {physical}\n")
        _, why = self.view.authenticity.get(manifest.id, ("unsigned", "not signed"))
        refusal = self._refusal(manifest)
        text.append(f"authenticity   {why}\n", style="red" if refusal else "")
        if refusal:
            text.append(f"never restored: {refusal}\n", style="bold red")
        source = manifest.source
        text.append(f"source  {describe_source(source)} at {source.get('url')}\n")
        text.append(f"chain   {' → '.join(m.id for m in chain)}\n")
        checkpoint = ", ".join(f"{k}={v}" for k, v in manifest.ingest_checkpoint.items()) or "-"
        text.append(f"ingest checkpoint  {checkpoint}\n\n")
        for entry in manifest.collections:
            schema = entry.schema
            text.append(f"{entry.name}\n", style="bold cyan")
            text.append(
                f"  {schema.dimension}-d {schema.distance}, records {entry.counts['records']}, "
                f"deletes {entry.counts['deletes']}, total {entry.counts['total_after_apply']}\n"
            )
            tenants = (
                ", ".join(f"{t.get('name')} ({t.get('records', '?')})" for t in entry.tenants)
                or "-"
            )
            text.append(f"  tenants {tenants}\n")
            text.append(f"  embedding {_embedding(entry.embedding)}\n")
            text.append(
                f"  files {len(entry.files)} ({format_bytes(sum(f.bytes for f in entry.files))})\n"
            )
            if entry.not_restorable:
                text.append(f"  not restorable {', '.join(entry.not_restorable)}\n", style="yellow")
        kept = self.kept.get(manifest.id)
        if kept is not None:
            style = "red" if not kept.intact else "green" if kept.authenticated else ""
            text.append(
                f"\nlast {kept.describe(self.console.services.clock())} on {kept.host}\n",
                style=style,
            )
        checked = self.verified.get(manifest.id)
        problems = findings + (checked.findings if checked else [])
        if problems:
            text.append("\nfindings\n", style="bold red")
            for finding in problems:
                text.append(f"  {finding.kind}: {finding.message}\n", style="red")
        elif checked:
            text.append(
                f"\nverified at depth {checked.depth}"
                + (f" (seed {checked.seed})" if checked.seed else ""),
                style="green",
            )
        return text

    def _refusal(self, manifest: Manifest) -> str | None:
        assert self.view is not None
        services = self.console.services
        return self.view.rejection(
            manifest, services.clock(), allow_unsigned=services.allow_unsigned()
        )

    def selected(self) -> Manifest | None:
        key = self.query_one("#snapshots", SnapshotList).cursor_key
        if self.view is None or key not in self.view.snapshots:
            return None
        return self.view.snapshots[key]

    def action_verify(self) -> None:
        manifest = self.selected()
        if manifest is None:
            self.notify("select a snapshot first", severity="warning")
            return

        def chosen(depth: str | None) -> None:
            if depth:
                self.run_verify(manifest.id, Depth.parse(depth))

        self.app.push_screen(
            ChoiceModal(f"Verify the chain of {manifest.id} at which depth?", DEPTHS), chosen
        )

    def run_verify(self, snapshot_id: str, depth: Depth) -> None:
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.remove_class("hidden")
        bar.update(total=None, progress=0)
        self.query_one("#status-line", Static).update(f"verifying {snapshot_id} at depth {depth}…")
        self.verify_worker(snapshot_id, depth)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="verify",
        description="verify a chain",
    )
    def verify_worker(self, snapshot_id: str, depth: Depth) -> None:
        assert self.view is not None
        services = self.console.services
        chain, _ = self.view.chain(snapshot_id)
        store = services.open_store()
        result = verify(
            self.view,
            store,
            [m.id for m in chain],
            depth,
            progress=lambda done, total: self.post_message(VerifyProgress(done, total)),
        )
        not_kept = keep_verification(
            store, self.view, result, services.catalog_key(), services.clock()
        )
        self.post_message(VerifyFinished(result, not_kept))

    @on(VerifyProgress)
    def show_verify_progress(self, message: VerifyProgress) -> None:
        self.query_one("#verify-progress", ProgressBar).update(
            total=message.total, progress=message.done
        )

    @on(VerifyFinished)
    def show_verify_result(self, message: VerifyFinished) -> None:
        result = message.result
        for snapshot_id in result.snapshot_ids:
            self.verified[snapshot_id] = result.only(snapshot_id)
        self.query_one("#verify-progress", ProgressBar).add_class("hidden")
        verdict = "intact" if result.intact else plural(len(result.findings), "finding")
        self.query_one("#status-line", Static).update(
            f"verified {plural(len(result.snapshot_ids), 'snapshot')} at depth {result.depth}: "
            f"{verdict}"
        )
        self.query_one("#snapshots", SnapshotList).set_rows(self._rows())
        if message.not_kept:
            self.notify(message.not_kept, severity="warning")

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.remove_class("hidden")
        self.set_focus(field)

    @on(Input.Changed, "#filter")
    def apply_filter(self, event: Input.Changed) -> None:
        self.query_one("#snapshots", SnapshotList).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def keep_filter(self) -> None:
        """Enter keeps the filter and goes back to the list to choose among the matches."""
        self.query_one("#snapshots", SnapshotList).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.add_class("hidden")
        self.query_one("#snapshots", SnapshotList).set_filter("")
        self.query_one("#snapshots", SnapshotList).focus()

    def action_restore(self) -> None:
        manifest = self.selected()
        if manifest is None:
            self.notify("select a snapshot first", severity="warning")
            return
        if self.console.services.runbook_path is None:
            self.notify("no runbook: start the console with --runbook FILE", severity="error")
            return

        def chosen(mode: str | None) -> None:
            if mode:
                self.console.start_run(mode, manifest.id)

        self.app.push_screen(
            ChoiceModal(
                f"Restore from {manifest.id}: which kind of run?",
                [("drill", "Drill (rehearsal)"), ("incident", "Incident (for real)")],
            ),
            chosen,
        )

    def action_timeline(self) -> None:
        self.console.show_timeline()

    def action_help(self) -> None:
        self.app.push_screen(
            HelpModal(
                help_keys(self.BINDINGS),
                "The catalog: chains of snapshots (full base, incrementals "
                "below), their age against the RPO and their integrity.",
            )
        )


def _laid(root: ChainNode) -> list[tuple[Manifest, int]]:
    """A chain's snapshots in order with their indent: the base at 0, a straight run of
    incrementals at 1 (nesting each under the last would push ids off an 80-column
    screen), a branch one deeper than the snapshot it branches from."""
    laid: list[tuple[Manifest, int]] = []
    stack = [(root, 0)]
    while stack:
        node, indent = stack.pop()
        laid.append((node.manifest, indent))
        step = 1 if indent == 0 or len(node.children) > 1 else 0
        stack.extend((child, indent + step) for child in reversed(node.children))
    return laid


def _embedding(embedding: dict[str, object]) -> str:
    """The model that made the vectors, in words; what was not recorded is said so."""
    if not embedding.get("model"):
        return "model not recorded (golden queries must use the same model)"
    parts = [str(embedding["model"])]
    if embedding.get("version"):
        parts.append(f"version {embedding['version']}")
    if "normalized" in embedding:
        parts.append("normalized" if embedding["normalized"] else "not normalized")
    return ", ".join(parts)
