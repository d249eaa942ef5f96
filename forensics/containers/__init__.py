"""Containers: list, diff, extract, compare with the image, logs, processes."""
