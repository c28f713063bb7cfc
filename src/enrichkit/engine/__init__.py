"""The run: its context set up once, the pack codec and prompt, answers checked (validation,
cross-wiring), settled and cached, and the salvage ladder in live and batch mode."""
