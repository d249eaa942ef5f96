"""Process memory: gcore dumps, credential search over dumps and live memory."""
