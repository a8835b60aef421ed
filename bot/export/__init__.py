"""The usage export: what the customer sees, read and reconciled against the ledger (rule 8).

- ``csvfile``: the export file, streamed (RFC 4180 through the ``csv`` module), every
  value checked; a malformed file raises ``ExportInvalid`` naming its line and column,
  and nothing is half-read.
- ``lines``: the one canonical form of a line (``ExportLine``), built alike from a line
  of the file and from a ledger entry with its stored usage row, so "faithful" is
  plain equality.
- ``reconcile``: rule 8 over a whole export in O(lines) small integers of memory: the
  file is streamed once, the org's ledger entries of those months once, and only the
  lines that break the rule are read again for the finding's words.
- ``findings``: the breaks as ``export_mismatch`` findings, one per app instance.

The contract is ``bot/contract/platform.md`` ("The usage export", rule 8).
"""
