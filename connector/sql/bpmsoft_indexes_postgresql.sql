-- Optional indexes for the connector's sync service on a BPMSoft / Creatio database (PostgreSQL).
--
-- The sync service looks for changes with keyset pages ordered by ("ModifiedOn", "Id") on
-- "Activity" and "ActivityParticipant", and reads the participants of changed meetings by
-- "ActivityId". Without these indexes each cycle scans both tables, so its cost grows with the
-- size of the CRM; with them it depends only on what changed (see bench/README.md).
--
-- Apply as the database owner, outside a transaction (CONCURRENTLY does not block BPMSoft's
-- writes; psql runs each statement on its own unless told otherwise):
--     psql -d bpmsoft -f bpmsoft_indexes_postgresql.sql
-- If your schema is not "public", set the search_path first. If a build is interrupted, the
-- index is left INVALID: drop it and run the file again. Undo with DROP INDEX CONCURRENTLY.
-- Your installation may already have an equivalent index (check with \d "Activity"); then skip
-- that statement.

CREATE INDEX CONCURRENTLY IF NOT EXISTS "IX_Activity_ModifiedOn_Id"
    ON "Activity" ("ModifiedOn", "Id");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "IX_ActivityParticipant_ModifiedOn_Id"
    ON "ActivityParticipant" ("ModifiedOn", "Id");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "IX_ActivityParticipant_ActivityId"
    ON "ActivityParticipant" ("ActivityId");

ANALYZE "Activity";
ANALYZE "ActivityParticipant";
