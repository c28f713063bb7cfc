"""What to ask for every row: the ``Task``, the one-line column language and the JSON Schema dialect
of its answers."""
