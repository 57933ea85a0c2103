-- Optional indexes for the connector's sync service on a BPMSoft / Creatio database
-- (Microsoft SQL Server). Same indexes as bpmsoft_indexes_postgresql.sql; see there and
-- bench/README.md for why.
--
-- Run with sqlcmd against the BPMSoft database (tables in [dbo]). ONLINE = ON keeps the tables
-- writable during the build but needs Enterprise edition or Azure SQL; on Standard edition
-- remove "ONLINE = ON, " and run it at a quiet time. Each statement is skipped when an index of
-- that name already exists. Undo with DROP INDEX [name] ON [dbo].[table].

IF NOT EXISTS (SELECT 1 FROM sys.indexes
               WHERE name = N'IX_Activity_ModifiedOn_Id' AND object_id = OBJECT_ID(N'[dbo].[Activity]'))
    CREATE NONCLUSTERED INDEX [IX_Activity_ModifiedOn_Id]
        ON [dbo].[Activity] ([ModifiedOn], [Id])
        WITH (ONLINE = ON, SORT_IN_TEMPDB = ON);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes
               WHERE name = N'IX_ActivityParticipant_ModifiedOn_Id' AND object_id = OBJECT_ID(N'[dbo].[ActivityParticipant]'))
    CREATE NONCLUSTERED INDEX [IX_ActivityParticipant_ModifiedOn_Id]
        ON [dbo].[ActivityParticipant] ([ModifiedOn], [Id])
        INCLUDE ([ActivityId])
        WITH (ONLINE = ON, SORT_IN_TEMPDB = ON);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes
               WHERE name = N'IX_ActivityParticipant_ActivityId' AND object_id = OBJECT_ID(N'[dbo].[ActivityParticipant]'))
    CREATE NONCLUSTERED INDEX [IX_ActivityParticipant_ActivityId]
        ON [dbo].[ActivityParticipant] ([ActivityId])
        WITH (ONLINE = ON, SORT_IN_TEMPDB = ON);
GO

UPDATE STATISTICS [dbo].[Activity];
UPDATE STATISTICS [dbo].[ActivityParticipant];
GO
