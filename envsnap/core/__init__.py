"""What several layers share, one copy each: redaction, hashing, lock text, column stats, naming, arrow.

This is the bottom layer above :mod:`envsnap._target`: it imports nothing from capture, diff, replay,
pipeline, snapshot or the CLI, so every one of them can use it. Import the submodules themselves
(``from envsnap.core.redact import scrub_text``); this package re-exports nothing, so that importing it
stays free and no attribute here can stand in for a submodule of the same name.
"""

__all__: list[str] = []
