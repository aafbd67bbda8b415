"""Plain-text and JSON views of a replay plan and a replay report (the CLI decides where they go)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from envsnap.diff.model import TableDiff
from envsnap.diff.render.phrasing import number_text, table_summary, value_text
from envsnap.diff.render.rows import row_text
from envsnap.replay.command import CommandReplay
from envsnap.replay.engines.docker import hardened_options
from envsnap.replay.execute import ReplayReport, StageReplay
from envsnap.replay.plan import ReplayPlan

__all__ = ["plan_json", "render_plan", "render_report", "report_json"]

REPORT_VERSION = 1


def _size(n: int | None) -> str:
    if n is None:
        return "none"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def render_plan(plan: ReplayPlan, *, engine: str = "docker") -> str:
    """``envsnap replay --dry-run``: everything the replay would do, nothing done."""
    lines = [f"replay plan for {plan.snapshot}{' (' + plan.label + ')' if plan.label else ''}"]
    lines.append(f"  fingerprint  {plan.fingerprint}")
    lines.append(f"  engine       {engine}")
    lines.append(f"  python       {plan.python_implementation} {plan.python_version} ({plan.platform})")
    if plan.platform_choice is not None:
        lines.append(f"  platform     {plan.platform_choice.line()}")
    if engine == "docker":
        lines.append(f"  base image   {plan.base_image}  ({plan.base_image_source})")
        if plan.base_fallback:
            lines.append(f"    {plan.base_fallback}")
        elif len(plan.base_candidates) > 1:
            lines.append(f"    if it cannot be pulled: {', then '.join(plan.base_candidates[1:])} (said when taken)")
        lines.append(f"  image tag    {plan.image_tag('uv')} (with uv) / {plan.image_tag('pip')} (with pip)")
        opts = hardened_options(plan)
        hardening = "network none, read-only root, tmpfs /tmp, cap-drop ALL, no-new-privileges, "
        hardening += f"user {opts['user']}, pids limit {opts['pids_limit']}, inputs read-only"
        lines.append(f"  hardening    {hardening}")
    limits = []
    if plan.memory_bytes:
        limits.append(f"memory {_size(plan.memory_bytes)}")
    if plan.cpus:
        limits.append(f"cpus {plan.cpus:g}")
    mirrored = ", ".join(limits) or "none recorded"
    lines.append(f"  resources    {mirrored if plan.match_resources else 'not mirrored (--no-match-resources)'}")
    lines.append(f"  packages     {len(plan.packages)} pinned, installed offline with --no-deps --require-hashes")
    if plan.image_python and engine == "docker":
        lines.append(f"    on the captured image: {plan.image_python} is used; pins it already has are not installed")
    for package in plan.packages:
        extra = f"  (--with; recorded {package.overridden_from})" if package.overridden_from else ""
        extra += "  (local wheel)" if package.source == "local-wheel" else ""
        lines.append(f"    {package.pin}{extra}")
    if plan.excluded:
        lines.append(f"  not installed ({len(plan.excluded)}): not available from an index")
        for item in plan.excluded:
            lines.append(f"    {item.name}=={item.version} [{item.kind}]: {item.reason}")
    lines.append(f"  environment  {len(plan.env)} variable(s) applied")
    for key, value in sorted(plan.env.items()):
        origin = "  (--set-env)" if key in plan.set_env else ""
        lines.append(f"    {key}={value}{origin}")
    for key, why in sorted(plan.env_not_applied.items()):
        lines.append(f"    {key}: not applied ({why})")
    if plan.mode == "environment":
        lines.append("  job          none recorded: --shell, or `-- COMMAND` to run a command in the runtime")
    elif plan.mode == "command":
        command = plan.command or {}
        argv = " ".join(str(a) for a in command.get("argv") or [])
        lines.append(f"  command      {argv}  (rerun as stage 'command', with the recorded inputs in place)")
        lines.append(f"  directory    {command.get('root')} / {command.get('cwd') or '.'}")
    else:
        lines.append(f"  inputs       {', '.join(plan.inputs) or 'none'} (the recorded samples, read-only)")
        lines.append("  stages")
    for stage in plan.stages:
        action = {"run": "run and compare", "recorded": "use the recorded intermediate", "skip": "skip"}[stage.action]
        lines.append(f"    {stage.index:>2} {stage.name:<16} {action}  [{stage.kind}: {stage.target}]")
    commit = plan.git.get("commit")
    if commit:
        dirty = " plus the recorded uncommitted changes" if plan.git.get("dirty") else ""
        lines.append(f"  source       commit {str(commit)[:12]} of {plan.git.get('root')}{dirty}")
    return "\n".join(lines) + "\n"


def _stage_line(stage: StageReplay) -> str:
    mark = {"match": "✓", "diverged": "✗", "failed": "✗", "recorded": "·", "skipped": " ", "not-run": "-"}[stage.status]
    head = f"  {mark} {stage.index:>2} {stage.name:<16}"
    if stage.status == "match" and len(stage.outputs) > 1:
        statuses = ", ".join(f"{t.name} {t.status.replace('_', ' ')}" for t in stage.outputs)
        return f"{head}{statuses}"
    if stage.status == "match" and stage.table is not None:
        rows = f"  {stage.rows} rows" if stage.rows is not None else ""
        took = f"  {stage.wall_time_s:.2f} s" if stage.wall_time_s is not None else ""
        return f"{head}{stage.table.status.replace('_', ' ')}{rows}{took}"
    if stage.status == "match" and stage.returned == "none":
        return f"{head}returned None, as recorded"
    if stage.status == "diverged" and stage.error and (stage.table is None or not stage.table.diverged):
        return f"{head}diverged: {stage.error}"
    if stage.status == "diverged" and stage.table is not None:
        which = f"{stage.table.name}: " if len(stage.outputs) > 1 else ""
        return f"{head}diverged: {which}{table_summary(stage.table)}"
    if stage.status == "failed" and stage.as_recorded:
        return f"  ✓ {stage.index:>2} {stage.name:<16}{stage.error}"
    if stage.status == "failed":
        return f"{head}failed ({stage.failure}): {stage.error}"
    other = {"recorded": "recorded intermediate used", "skipped": "skipped", "not-run": "not run"}
    return f"{head}{other.get(stage.status, stage.status)}"


def _table_lines(stage: StageReplay) -> list[str]:
    if stage.status != "diverged":
        return []
    out: list[str] = []
    several = len(stage.outputs) > 1
    for table in stage.outputs or ((stage.table,) if stage.table is not None else ()):
        if several:
            out.append(f"       {table.name}: {table_summary(table)}")
        if table.diverged:
            out.extend(_one_table_lines(table))
    return out


def _one_table_lines(table: TableDiff) -> list[str]:
    out = []
    for change in table.schema:
        out.append(
            f"       schema {change.column}: {change.kind} {value_text(change.before)} → {value_text(change.after)}"
        )
    for col in table.columns:
        if col.status in ("different", "incomparable", "within_tolerance"):
            out.append(
                f"       column {col.column}: {col.status.replace('_', ' ')}, {col.differing} differ, "
                f"max |Δ| {number_text(col.max_abs_diff)}, max rel Δ {number_text(col.max_rel_diff)}"
            )
    for row in table.sample_rows[:3]:
        where = row.get("key", row.get("position"))
        out.append(f"       [{value_text(where)}] recorded {row_text(row, 'a', limit=160)}")
        out.append(f"       {' ' * (len(value_text(where)) + 2)} replayed {row_text(row, 'b', limit=160)}")
    return out


def render_report(report: ReplayReport) -> str:
    """The terminal view of a replay: a line per stage, the verdict, overrides and fidelity."""
    plan, prepared = report.plan, report.prepared
    built = f"built in {prepared.build_seconds:.1f} s" if prepared.built else "reused: no rebuild"
    lines = [f"envsnap replay {plan.snapshot}{' (' + plan.label + ')' if plan.label else ''}"]
    lines.append(f"  {report.engine}: {prepared.reference} ({built}, installed with {prepared.installer})")
    lines.append(f"  source: {report.source}")
    for note in report.source_notes + report.notes:
        lines.append(f"  note: {note}")
    if plan.with_packages or plan.set_env:
        what = [f"--with {p}" for p in plan.with_packages] + [f"--set-env {k}={v}" for k, v in plan.set_env.items()]
        lines.append(f"  what-if: {' '.join(what)}")
    lines.append("")
    if report.command is not None:
        lines.extend(_command_lines(report.command))
    else:
        for stage in report.stages:
            lines.append(_stage_line(stage))
            lines.extend(_table_lines(stage))
        lines.append("")
        first = report.first_diverging_stage
        failed_alike = [s for s in report.stages if s.as_recorded]
        if first is None and failed_alike:
            lines.append(f"reproduced: stage {failed_alike[0].name} failed as in the recording")
        elif first is None:
            ran = [s for s in report.stages if s.status == "match"]
            lines.append(f"every replayed intermediate matches the recording ({len(ran)} stage(s))")
        else:
            lines.append(f"first diverging stage: {first}")
    if report.seconds_to_first_stage is not None:
        lines.append(f"first stage started {report.seconds_to_first_stage:.1f} s after the replay began")
    for entry in report.added_to_sys_path:
        lines.append(f"added by the runner: {entry}")
    for key, why in sorted(plan.env_not_applied.items()):
        lines.append(f"not applied: {key} ({why})")
    for item in plan.excluded:
        lines.append(f"not installed: {item.name}=={item.version} ({item.reason})")
    if report.fidelity is not None:
        if not report.fidelity:
            lines.append("fidelity: the replayed runtime matches the captured one on every layer checked")
        else:
            lines.append(
                f"fidelity: {len(report.fidelity)} difference(s) between the captured and the replayed runtime"
            )
            for diff in report.fidelity:
                note = f"  ({diff.note})" if diff.note else ""
                lines.append(f"  {diff.layer:<9} {diff.what:<16} {diff.recorded} → {diff.replayed}{note}")
    return "\n".join(lines) + "\n"


def _indented(title: str, text: str) -> list[str]:
    if not text.strip():
        return [f"{title}: (none)"]
    return [f"{title}:", *(f"    {line}" for line in text.splitlines())]


def _command_lines(command: CommandReplay) -> list[str]:
    """A command replay: the verdict first, then how each run ended, the outputs, both traceback tails."""
    mark = "✓" if command.verdict == "reproduced" else "✗"
    lines = [f"  {mark}  1 command          {command.verdict}: {command.reason}"]
    recorded = "?" if command.recorded_exit_status is None else str(command.recorded_exit_status)
    lines.append(f"       {' '.join(command.argv)[:160]}")
    lines.append(f"       exit status {recorded} recorded, {command.replayed_exit_status} replayed (in {command.cwd})")
    for output in command.outputs:
        sign = "✓" if output.matches else "✗"
        lines.append(f"       {sign} output {output.name} ({output.path}): {output.status.replace('_', ' ')}")
        if output.note and output.status not in ("identical", "equal"):
            lines.append(f"           {output.note}")
        if output.table is not None and output.table.diverged:
            lines.append(f"           {table_summary(output.table)}")
    lines.append("")
    if command.recorded_exit_status or command.replayed_exit_status:
        lines.extend(_indented("recorded traceback (tail)", command.recorded_traceback))
        lines.extend(_indented("replayed traceback (tail)", command.replayed_traceback))
        lines.append("")
    lines.append(f"{command.verdict}: {command.reason}")
    return lines


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def report_json(report: ReplayReport) -> str:
    """``--json``: the whole report, stable keys."""
    doc = {
        "report_version": REPORT_VERSION,
        "exit_code": report.exit_code,
        "first_diverging_stage": report.first_diverging_stage,
        "verdict": report.verdict,
        "recorded_traceback": report.command.recorded_traceback if report.command is not None else None,
        "replayed_traceback": report.command.replayed_traceback if report.command is not None else None,
        **_plain(report),
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def plan_json(plan: ReplayPlan) -> str:
    return json.dumps({"report_version": REPORT_VERSION, **_plain(plan)}, indent=2, sort_keys=True) + "\n"
