"""The evidence sink: every collected byte goes through here, named, hashed and recorded."""
