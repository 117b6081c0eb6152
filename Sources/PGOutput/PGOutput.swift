// The pgoutput decoder lands with the replication protocol issue.
import PostgresWire
