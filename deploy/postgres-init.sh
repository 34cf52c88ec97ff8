#!/usr/bin/env bash
# Runs once, when the postgres service starts on an empty data volume (/docker-entrypoint-initdb.d):
# Airflow's metadata and the warehouse get a database and an owner each, so neither can touch the other's
# tables and the warehouse can be backed up, restored or moved on its own.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
  -v airflow_password="${AIRFLOW_DB_PASSWORD}" -v hub_password="${HUB_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE channelhub LOGIN PASSWORD :'hub_password';
CREATE DATABASE channelhub OWNER channelhub;
SQL
