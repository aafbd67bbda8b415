"""Integrations with other tools: the pytest plugin (``pytest --envsnap-on-fail DIR``)."""

__all__: list[str] = []
