SELECT version, name, checksum, applied_at
FROM recon_schema_migrations
ORDER BY version
