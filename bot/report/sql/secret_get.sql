-- The per-install report-link secret, when one was drawn.
SELECT secret FROM report_secret WHERE singleton
