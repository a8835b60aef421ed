#!/usr/bin/env bash
# First start of the local stack's PostgreSQL (docker-entrypoint-initdb.d): recon's store
# and the platform's billing database, each with its own role.
#   recon     owns the database `recon` (the store; `recon migrate` creates its schema)
#   recon_ro  may only read the database `billing` (schema from bot/contract/billing_schema.sql)
# Names can be changed through the environment (the tests run this on a shared server).
set -euo pipefail

: "${RECON_DB_PASSWORD:?RECON_DB_PASSWORD is required}"
: "${BILLING_RO_PASSWORD:?BILLING_RO_PASSWORD is required}"
RECON_DB_NAME=${RECON_DB_NAME:-recon}
RECON_DB_USER=${RECON_DB_USER:-recon}
BILLING_DB_NAME=${BILLING_DB_NAME:-billing}
BILLING_OWNER=${BILLING_OWNER:-billing_owner}
BILLING_RO_USER=${BILLING_RO_USER:-recon_ro}
BILLING_SCHEMA_FILE=${BILLING_SCHEMA_FILE:-/recon/billing_schema.sql}
PSQL=(psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}")

"${PSQL[@]}" --dbname "${POSTGRES_DB:-postgres}" \
  -v recon_db="$RECON_DB_NAME" -v recon_user="$RECON_DB_USER" -v recon_password="$RECON_DB_PASSWORD" \
  -v billing_db="$BILLING_DB_NAME" -v billing_owner="$BILLING_OWNER" \
  -v ro_user="$BILLING_RO_USER" -v ro_password="$BILLING_RO_PASSWORD" <<'SQL'
CREATE ROLE :"recon_user" LOGIN PASSWORD :'recon_password';
CREATE DATABASE :"recon_db" OWNER :"recon_user";
REVOKE ALL ON DATABASE :"recon_db" FROM PUBLIC;

CREATE ROLE :"billing_owner" NOLOGIN;
CREATE ROLE :"ro_user" LOGIN PASSWORD :'ro_password';
-- belt and braces: every transaction of the read-only role is read-only
ALTER ROLE :"ro_user" SET default_transaction_read_only = on;
CREATE DATABASE :"billing_db" OWNER :"billing_owner";
REVOKE ALL ON DATABASE :"billing_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"billing_db" TO :"ro_user";
SQL

# The billing schema, owned by billing_owner (loading rows: connect as the superuser).
"${PSQL[@]}" --dbname "$BILLING_DB_NAME" -v billing_owner="$BILLING_OWNER" <<SQL
SET ROLE :"billing_owner";
\i $BILLING_SCHEMA_FILE
RESET ROLE;
SQL

"${PSQL[@]}" --dbname "$BILLING_DB_NAME" -v billing_owner="$BILLING_OWNER" -v ro_user="$BILLING_RO_USER" <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA billing TO :"ro_user";
GRANT SELECT ON ALL TABLES IN SCHEMA billing TO :"ro_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"billing_owner" IN SCHEMA billing GRANT SELECT ON TABLES TO :"ro_user";
SQL

echo "10-recon.sh: created $RECON_DB_NAME (owner $RECON_DB_USER) and $BILLING_DB_NAME (read-only role $BILLING_RO_USER)"
