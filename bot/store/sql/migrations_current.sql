SELECT coalesce(max(version), 0) FROM recon_schema_migrations
