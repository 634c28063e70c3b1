"""The audit trail: one JSON line per decision, evidence that nothing was changed, and the tools
that read it back.

Writing: `envelope` (the first bytes of every line and the time in them), `redaction` (what never
reaches a line), `log` (the `AuditLog` every recorder writes through), `file` (the append-only,
rotation-safe file) and `chain` (the hash chain that makes edits evident). Reading: `reader` (the
one way to open an audit file, gzipped or not), `verify`, `review` and `report/`.
"""
