"""How we see a Docker host: the Engine API (read-only), the disk, safe roots."""
