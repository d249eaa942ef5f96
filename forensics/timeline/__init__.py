"""Timelines of a triage: the Sleuth Kit's body file and Timesketch JSON lines."""
