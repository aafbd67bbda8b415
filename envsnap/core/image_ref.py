"""Container image references: the repository of one, and the one reference a recorded image is shown
and pulled by.

An image is recorded in ``env/container.json`` as ``{"reference", "digest", "id", "source"}``, where the
reference may already carry the digest (a container started from ``repo@sha256:...``, or
``ENVSNAP_IMAGE=repo@sha256:...``). Every place that prints or pulls the image goes through these
functions, so that the digest is never appended twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["display_reference", "pinned_reference", "repository"]


def repository(reference: str) -> str:
    """``python:3.11-slim`` → ``python``; ``127.0.0.1:5000/job:1@sha256:...`` → ``127.0.0.1:5000/job``
    (the digest and the tag are cut, a registry port is kept)."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _text(image: Mapping[str, Any], key: str) -> str | None:
    value = image.get(key)
    return value if isinstance(value, str) and value else None


def pinned_reference(image: Mapping[str, Any] | None) -> str | None:
    """``repository@sha256:...``, the reference that pulls exactly the recorded image, or None when the
    record has no digest or no repository to pull it from."""
    if not isinstance(image, Mapping):
        return None
    reference = _text(image, "reference") or _text(image, "name")
    digest = _text(image, "digest")
    if digest is None and reference is not None and "@" in reference:
        digest = reference.rsplit("@", 1)[1]
    if reference is None or digest is None:
        return None
    repo = repository(reference)
    return f"{repo}@{digest}" if repo else None


def display_reference(image: Mapping[str, Any] | None) -> str:
    """The image as ``envsnap show`` prints it, its digest once: ``repo:tag@sha256:...`` (a reference that
    already names its digest is printed as it is), else the reference or digest alone, else the local image
    id, else ``?``."""
    if not isinstance(image, Mapping):
        return "?"
    reference = _text(image, "reference") or _text(image, "name")
    digest = _text(image, "digest")
    image_id = _text(image, "id")
    if reference is not None:
        if "@" in reference or digest is None:
            shown = reference
        else:
            shown = f"{reference}@{digest}"
        if digest is None and "@" not in reference and image_id is not None:
            shown += f" (image id {image_id[:19]}…)"
        return shown
    if digest is not None:
        return digest
    return f"image id {image_id}" if image_id is not None else "?"
