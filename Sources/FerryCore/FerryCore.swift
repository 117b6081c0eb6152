// The pipeline lands with the pipeline issue.
import PostgresWire
