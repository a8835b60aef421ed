"""Follow-up tickets in GitHub or Jira: one per (incident, owning layer), exactly once.

- ``settings``: ``RECON_TRACKER``, ``GITHUB_*``, ``JIRA_*``, ``RECON_TRACKER_LAYERS``
  (``TrackerSettings``, inherited by ``bot.settings.Settings``), checked by
  ``tracker_config``;
- ``model``: facts in, ticket content, markers, outcomes; ``render``: Markdown and ADF;
- ``base``: the ``Tracker`` protocol; ``github``, ``jira``: its two implementations over
  httpx; ``http``: one call and its failures (``TrackerRetryable`` / ``TrackerRejected``);
- ``store``: ``tracker_tickets`` (migration 013) and the per-ticket advisory lock;
- ``ensure``: ``ensure_ticket``, ``comment_recovered``;
- ``job``: ``run_ticket_job(payload, deps)``, the ``tracker_ticket`` job's consumer;
- ``build``: ``build_tracker(config)``.
"""
