"""Where validated answers are kept: the cache protocol, a folder (SQLite) or a shared Redis server,
the group commit that writes them, and the salvage of a damaged folder."""
