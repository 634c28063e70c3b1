"""Policies: the model of an agency's written policy, its working week, and the strict loader.

`model` (immutable data), `schedule` (time windows), `loader` (a file or a directory of them),
`sections/` (one reader per section of the file) and `checks` (across sections and agencies).
"""
