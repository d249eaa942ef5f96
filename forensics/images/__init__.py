"""Images: one reader for every source, and the analyses built on it."""
