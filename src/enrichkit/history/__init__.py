"""What runs did, kept in the cache folder: the run history (``runs``), each run's answers for ``diff``
(``answers``) and the call log (``calls``). Every file is append-only JSON lines; a damaged line or file is
skipped with a ``HistoryWarning``, and a write that fails turns the record off for the run, never the run."""
