"""``envsnap show``, ``envsnap verify`` and ``envsnap export``: read-only views of a snapshot."""

from __future__ import annotations

import json
import sys

import typer

from envsnap.cli._common import EXIT_USAGE, cli_errors, err, human_size, write_output


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
    from envsnap.snapshot.summary import summarize

    with open_snapshot(snap) as snapshot:
        if section is not None:
            data = snapshot.section(section)
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


@cli_errors
def export(
    snap: str = typer.Argument(..., metavar="SNAP", help="Snapshot directory or *.envsnap file."),
    requirements: str = typer.Option(None, "--requirements", "-r", help="Write the pinned lock here ('-' = stdout)."),
    sbom: str = typer.Option(None, "--sbom", help="Write the CycloneDX 1.6 SBOM here ('-' = stdout)."),
) -> None:
    """Export the lock (pip-tools compatible) or the CycloneDX SBOM of a snapshot."""
    from envsnap.snapshot.reader import open_snapshot

    if (requirements is None) == (sbom is None):
        err("envsnap: error: give exactly one of --requirements FILE or --sbom FILE")
        raise typer.Exit(EXIT_USAGE)
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
