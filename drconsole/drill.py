"""Headless walk of a run: what ``drconsole drill`` does, for cron and CI.

Manual steps are confirmed only when the step allows it in a drill
(``auto_confirm_in_drill``) or the operator passed ``--yes``; the record says so. The walk
stops with exit code 3 at anything that needs a person, 1 on a failed gate or a missed
RTO, and 0 when every gate passed and the RTO target was met. A step cancelled with
Ctrl-C is run again when the run is resumed: a person stopped it, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drconsole.actions.base import ProgressCallback
from drconsole.incident.metrics import RunMetrics
from drconsole.runbook.model import Step
from drconsole.runner import Runner

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NEEDS_OPERATOR = 3
EXIT_DECISIONS = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class DrillOptions:
    yes: bool = False
    rerun_interrupted: bool = False
    mark_interrupted_done: bool = False


@dataclass(frozen=True)
class DrillResult:
    exit_code: int
    message: str
    metrics: RunMetrics


def drive(
    runner: Runner,
    options: DrillOptions,
    progress_for: Callable[[str], ProgressCallback | None] = lambda step_id: None,
) -> DrillResult:
    """Walk the run until it finishes or needs a person; returns the exit code to use."""
    try:
        stop = _walk(runner, options, progress_for)
    except KeyboardInterrupt:
        runner.pause("interrupted with Ctrl-C")
        stop = (
            EXIT_INTERRUPTED,
            f"interrupted with Ctrl-C; the run is resumable: "
            f"`drconsole drill --resume {runner.run_id}`",
        )
    runner.release_sandbox()
    metrics = runner.store.metrics(runner.run_id)
    if stop is not None:
        return DrillResult(stop[0], stop[1], metrics)
    if metrics.status == "succeeded" and metrics.rto_met and metrics.status_label != "succeeded":
        return DrillResult(
            EXIT_DECISIONS,
            f"{metrics.status_label}: the RTO target was met, but look at what was decided",
            metrics,
        )
    if metrics.status == "succeeded" and metrics.rto_met:
        return DrillResult(EXIT_OK, "every gate passed and the RTO target was met", metrics)
    if metrics.status == "succeeded":
        missed = "not measured" if metrics.rto_met is None else "missed"
        return DrillResult(
            EXIT_FAILED, f"the steps succeeded but the RTO target was {missed}", metrics
        )
    reason = runner.state.finished.get("reason") if runner.state.finished else None
    return DrillResult(EXIT_FAILED, f"the run failed: {reason or 'see the record'}", metrics)


def _walk(
    runner: Runner, options: DrillOptions, progress_for: Callable[[str], ProgressCallback | None]
) -> tuple[int, str] | None:
    """Answer the runner until the run finishes (None) or needs a person (code, message)."""

    def needs_operator(step: Step, message: str) -> tuple[int, str]:
        runner.pause(message, step.id)
        return EXIT_NEEDS_OPERATOR, message

    def run(step: Step) -> tuple[int, str] | None:
        if step.destructive and not options.yes:
            return needs_operator(
                step, f"step {step.id} is destructive; confirm in the console or pass --yes"
            )
        runner.run_step(step.id, confirmed=options.yes, progress=progress_for(step.id))
        return None

    while True:
        pending = runner.advance()
        step = pending.step
        stop: tuple[int, str] | None = None
        if pending.kind == "finished":
            return None
        if pending.kind == "complete":
            runner.finish()
            return None
        assert step is not None
        if pending.kind == "interrupted":
            if options.rerun_interrupted:
                runner.rerun_interrupted()
                stop = None if step.is_manual else run(step)
            elif options.mark_interrupted_done:
                runner.mark_interrupted_done()
            else:
                stop = needs_operator(
                    step,
                    f"step {step.id} was interrupted; resume with "
                    "--rerun-interrupted or --mark-interrupted-done",
                )
        elif pending.kind == "run":
            stop = run(step)
        elif pending.kind == "confirm":
            if runner.mode == "drill" and step.auto_confirm_in_drill:
                runner.confirm(step.id, via="auto_confirm_in_drill")
            elif options.yes:
                runner.confirm(step.id, via="--yes")
            else:
                stop = needs_operator(step, f"step {step.id} waits for a person: {step.title}")
        elif pending.kind == "blocked" and runner.state.steps[step.id].status == "cancelled":
            stop = run(step)
        elif pending.kind == "blocked":
            state = runner.state.steps[step.id]
            what = "gate" if step.gate else "step"
            runner.finish("failed", f"{what} {step.id} {state.status}: {state.summary}")
            return None
        if stop is not None:
            return stop
