"""The incident report: the page behind ``GET /incidents/{id}`` (signed, expiring links),
its Markdown export, and the retention of incidents.

- ``data``: ``load_report(pool, incident_id)`` → ``IncidentReport`` (one snapshot);
- ``render``: ``render_html`` / ``render_markdown``;
- ``tokens``: ``make_token`` / ``check_token`` / ``report_url`` and the secret;
- ``retention``: ``purge(pool, days, dry_run)``.
"""
