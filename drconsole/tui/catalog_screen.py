"""The catalog: chains as a tree, the selected snapshot's details, verify and restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, ProgressBar, Static, Tree
from textual.worker import Worker

from drconsole.catalog.catalog import CatalogView
from drconsole.catalog.manifest import Manifest
from drconsole.catalog.source import describe_source
from drconsole.catalog.verify import Depth, VerifyResult, verify
from drconsole.sizes import format_bytes
from drconsole.timefmt import format_duration, format_utc
from drconsole.tui.messages import CatalogLoaded, VerifyFinished, VerifyProgress
from drconsole.tui.modals import ChoiceModal, HelpModal
from drconsole.tui.screen_base import ConsoleScreen
from drconsole.tui.widgets import help_keys

if TYPE_CHECKING:
    from drconsole.tui.app import DrconsoleApp

DEPTHS = [
    ("manifest", "manifest: structure and chain"),
    ("sizes", "sizes: every file and its size"),
    ("full", "full: hash every byte"),
    ("sample:10%", "sample:10%: hash a seeded 10% of the files"),
]


class CatalogScreen(ConsoleScreen):
    AUTO_FOCUS = "#tree"  # never the hidden filter input: it would swallow the keys
    BINDINGS = [
        Binding("v", "verify", "Verify", tooltip="verify the selected chain at a chosen depth"),
        Binding("r", "restore", "Restore", tooltip="start a run from the selected snapshot"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("t", "timeline", "Timeline"),
        Binding("f5", "reload", "Reload"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: CatalogView | None = None
        self.verified: dict[str, VerifyResult] = {}
        self.filter_text = ""

    @property
    def console(self) -> DrconsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="chains"):
                yield Input(
                    placeholder="filter snapshots (id, collection)", id="filter", classes="hidden"
                )
                yield Tree("catalog", id="tree")
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
        self.post_message(CatalogLoaded(self.console.services.load_catalog()))

    @on(CatalogLoaded)
    def show_catalog(self, message: CatalogLoaded) -> None:
        self.view = message.view
        self.rebuild_tree()
        count = len(message.view.snapshots)
        warning = (
            "  ⚠ local only: a disk failure can take the database and its backups together"
            if message.view.local
            else ""
        )
        extra = f", {len(message.view.unfinished)} unfinished" if message.view.unfinished else ""
        self.query_one("#status-line", Static).update(f"{count} snapshots{extra}{warning}")

    def rebuild_tree(self) -> None:
        view = self.view
        tree = self.query_one("#tree", Tree)
        tree.clear()
        if view is None:
            return
        tree.root.set_label(Text(self.console.services.catalog_label(), style="bold"))
        roots, orphans = view.trees()
        for root in roots:
            parent_nodes = {}
            for depth, node in root.walk():
                if not self._shown(node.manifest):
                    continue
                anchor = parent_nodes.get(node.manifest.parent, tree.root) if depth else tree.root
                parent_nodes[node.manifest.id] = anchor.add(
                    self._label(node.manifest), data=node.manifest.id, expand=True
                )
        for manifest in orphans:
            if self._shown(manifest):
                tree.root.add_leaf(self._label(manifest), data=manifest.id)
        for item in view.unfinished:
            tree.root.add_leaf(
                Text(f"… {item.id}  unfinished ({item.files} files), never restorable", style="dim")
            )
        tree.root.expand()
        self._select_newest(tree)

    def _select_newest(self, tree: Tree[str]) -> None:
        """Start on the newest snapshot shown: the recovery point an operator usually wants."""
        assert self.view is not None
        shown = {m.id: m for m in self.view.snapshots.values() if self._shown(m)}
        if not shown:
            tree.cursor_line = 0
            return
        newest = max(shown.values(), key=lambda m: m.recovery_point).id
        for line in range(tree.last_line + 1):
            node = tree.get_node_at_line(line)
            if node is not None and node.data == newest:
                tree.move_cursor_to_line(line)
                return

    def _shown(self, manifest: Manifest) -> bool:
        text = self.filter_text.lower()
        return (
            not text
            or text in manifest.id.lower()
            or any(text in c.name.lower() for c in manifest.collections)
        )

    def _label(self, manifest: Manifest) -> Text:
        """Status first (it must never be cut off), then kind, id, age against the RPO, size."""
        assert self.view is not None
        age = (self.console.services.clock() - manifest.recovery_point).total_seconds()
        rpo = self.console.services.rpo_s()
        _, findings = self.view.chain(manifest.id)
        checked = self.verified.get(manifest.id)
        if findings or (checked and not checked.intact) or self._refusal(manifest):
            label = Text("✗ ", style="red")
        elif checked:
            label = Text("✓ ", style="green")
        else:
            label = Text("· ", style="dim")
        label.append(f"{'F' if manifest.kind == 'full' else 'I'} {manifest.id}  ")
        label.append(
            f"age {format_duration(age)}",
            style="" if rpo is None else "green" if age <= rpo else "red",
        )
        label.append(f"  {format_bytes(manifest.size)}", style="dim")
        return label

    @on(Tree.NodeHighlighted)
    def show_details(self, event: Tree.NodeHighlighted) -> None:
        snapshot_id = event.node.data
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
            embedding = entry.embedding
            if embedding:
                text.append(
                    f"  embedding {embedding.get('model', '?')} {embedding.get('version', '')} "
                    f"normalized={embedding.get('normalized', '?')}\n"
                )
            text.append(
                f"  files {len(entry.files)} ({format_bytes(sum(f.bytes for f in entry.files))})\n"
            )
            if entry.not_restorable:
                text.append(f"  not restorable {', '.join(entry.not_restorable)}\n", style="yellow")
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
        node = self.query_one("#tree", Tree).cursor_node
        if self.view is None or node is None or node.data not in self.view.snapshots:
            return None
        return self.view.snapshots[node.data]

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
        chain, _ = self.view.chain(snapshot_id)
        result = verify(
            self.view,
            self.console.services.open_store(),
            [m.id for m in chain],
            depth,
            progress=lambda done, total: self.post_message(VerifyProgress(done, total)),
        )
        self.post_message(VerifyFinished(result))

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
        verdict = "intact" if result.intact else f"{len(result.findings)} finding(s)"
        self.query_one("#status-line", Static).update(
            f"verified {len(result.snapshot_ids)} snapshot(s) at depth {result.depth}: {verdict}"
        )
        self.rebuild_tree()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.remove_class("hidden")
        field.focus()

    @on(Input.Changed, "#filter")
    def apply_filter(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.rebuild_tree()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.add_class("hidden")
        self.query_one("#tree", Tree).focus()

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
