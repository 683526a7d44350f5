-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER ("kglab"), who owns the databases it creates.
-- One database per service that keeps relational data: no service reads another's tables.
-- A new service with PostgreSQL state adds its line here and its KGLAB_POSTGRES_URL in
-- docker-compose.yml; an existing volume is not re-initialised (create the database by hand, or
-- remove the volume with `docker compose down -v`).

CREATE DATABASE auth;
CREATE DATABASE ingestion;
