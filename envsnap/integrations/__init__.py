"""Integrations with other tools: the pytest plugin (``pytest --envsnap-on-fail DIR``)."""
