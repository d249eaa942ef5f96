"""Processes of a live host: inventory with container attribution, rules, monitor, strace."""
