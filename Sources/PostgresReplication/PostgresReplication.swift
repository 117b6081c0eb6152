// The replication client lands with the replication protocol issue.
import PostgresWire
