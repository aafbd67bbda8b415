"""``envsnap show``, ``envsnap verify`` and ``envsnap export``: read-only views of a snapshot."""

from __future__ import annotations

import json
import sys

import typer

from envsnap.cli._common import EXIT_USAGE, cli_errors, err, write_output
from envsnap.core.naming import human_size

__all__ = ["export", "show", "verify"]


def _dump(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cli_errors
def show(
    snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot directory or *.envsnap file."),
    section: str = typer.Option(None, "--section", "-s", help="Print one section (e.g. packages, lock, gpu)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Summarise a snapshot, or print one of its sections."""
    from envsnap.snapshot.reader import open_snapshot
    from envsnap.snapshot.summary import lockfiles_table, summarize

    with open_snapshot(snap) as snapshot:
        if section is not None:
            data = snapshot.section(section)
            readable = section in ("lockfiles", "project/lockfiles.json") and not as_json
            if readable and isinstance(data, dict) and set(data) != {"error"}:
                sys.stdout.write(lockfiles_table(data))  # a table; --json for the member itself
                return
            sys.stdout.write(data if isinstance(data, str) and not as_json else _dump(data))
            return
        summary = summarize(snapshot)
        manifest = snapshot.manifest
        if as_json:
            sys.stdout.write(_dump({"manifest": manifest.to_dict(), "summary": summary}))
            return
        size = sum(m.size for m in manifest.members.values())
        lines = [
            f"snapshot    {snapshot.path}",
            f"id          {manifest.id}",
            f"label       {manifest.label or '-'}",
            f"created     {manifest.created_at or '- (reproducible)'} by {manifest.created_by}",
            f"fingerprint {manifest.fingerprint}",
            f"members     {len(manifest.members)}, {human_size(size)}",
            "",
        ]
        width = max((len(k) for k in summary), default=0)
        lines += [f"{name.ljust(width)}  {line}" for name, line in summary.items()]
        failed = [(n, s.error) for n, s in sorted(manifest.probes.items()) if s.status == "error"]
        if failed:
            lines.append("")
            lines += [f"probe {n} failed: {e}" for n, e in failed]
        sys.stdout.write("\n".join(lines) + "\n")


@cli_errors
def verify(snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot directory or *.envsnap file.")) -> None:
    """Re-hash every member against the manifest and validate every JSON member."""
    from envsnap.snapshot.reader import open_snapshot

    with open_snapshot(snap) as snapshot:
        report = snapshot.verify()
    sys.stdout.write(
        f"OK {report.path}: {report.members} members, {human_size(report.bytes)} verified, "
        f"fingerprint {report.fingerprint}\n"
    )


def _export_dockerfile(snap: str, dest: str, base_image: str | None) -> None:
    """Write the build context a replay would build: ``docker build DEST`` rebuilds the image by hand."""
    import shutil
    import tempfile
    from pathlib import Path

    from envsnap.errors import OutputError
    from envsnap.replay.dockerfile import write_context
    from envsnap.replay.plan import build_plan
    from envsnap.snapshot.reader import open_snapshot

    target = Path(dest)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputError(f"{dest} exists and is not an empty directory", hint="pick a new directory")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"{parent} does not exist", hint="create it first")
    with open_snapshot(snap) as snapshot:
        plan = build_plan(snapshot, base_image=base_image)
    # Built next to the destination and renamed into place: an interrupted export leaves nothing half-written.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        wheelhouse = write_context(plan, tmp / "ctx", log=lambda m: err(f"  {m}"))
        if target.exists():
            target.rmdir()
        (tmp / "ctx").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    err(f"wrote {dest}: Dockerfile, requirements.txt and {len(wheelhouse.wheels)} wheel(s)")
    err(f"build it with: docker build --network none -t {plan.image_tag('uv' if wheelhouse.uv else 'pip')} {dest}")


@cli_errors
def export(
    snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot directory or *.envsnap file."),
    requirements: str = typer.Option(None, "--requirements", "-r", help="Write the pinned lock here ('-' = stdout)."),
    sbom: str = typer.Option(None, "--sbom", help="Write the CycloneDX 1.6 SBOM here ('-' = stdout)."),
    dockerfile: str = typer.Option(
        None, "--dockerfile", help="Write a replay build context (Dockerfile, pinned wheels) into this new directory."
    ),
    base_image: str = typer.Option(
        None, "--base-image", envvar="ENVSNAP_BASE_IMAGE", help="Base image for --dockerfile (as for replay)."
    ),
) -> None:
    """Export the lock (pip-tools compatible), the CycloneDX SBOM, or a Docker build context of a snapshot."""
    from envsnap.snapshot.reader import open_snapshot

    if sum(x is not None for x in (requirements, sbom, dockerfile)) != 1:
        err("envsnap: error: give exactly one of --requirements FILE, --sbom FILE or --dockerfile DIR")
        raise typer.Exit(EXIT_USAGE)
    if dockerfile is not None:
        _export_dockerfile(snap, dockerfile, base_image)
        return
    member = "env/requirements.lock" if requirements is not None else "env/sbom.cdx.json"
    dest = requirements if requirements is not None else sbom
    with open_snapshot(snap) as snapshot:
        status = snapshot.manifest.probes.get("lock" if requirements is not None else "sbom")
        if member not in snapshot and status is not None and status.error:
            from envsnap.errors import NotFoundError

            raise NotFoundError(f"{snap}: {member} was not captured ({status.error})")
        if member.endswith(".json"):
            data = snapshot.read_json(member)
            if isinstance(data, dict) and set(data) == {"error"}:
                from envsnap.errors import NotFoundError

                raise NotFoundError(f"{snap}: the SBOM probe failed at capture ({data['error']['message']})")
            payload = _dump(data).encode()
        else:
            payload = snapshot.read_bytes(member)
    where = write_output(dest, payload)
    if where != "stdout":
        err(f"wrote {where}")
