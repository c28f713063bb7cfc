"""enrichkit beside other frameworks: Ray Data (``integrations.ray``)."""
