"""Moderation hooks: plain Python checks on a user's input and on the streamed reply.

See `base` for the protocol, `chain` for running hooks under a time budget,
`gate` for holding streamed text back until it has been checked, and `rules`
and `pii` for the built-in hooks. No Django, no Redis, no torch here.
"""
