SELECT to_regclass('recon_schema_migrations') IS NOT NULL
