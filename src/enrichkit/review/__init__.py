"""``enrichkit review``: an output looked at in the browser, the doubtful rows first; a person's corrections
kept as reviewed values (``engine.reviewed``) that every later run serves."""
