"""What a CLI run writes: output files (atomically, or to stdout), the sweep of a cached re-run, and
the receipt."""
