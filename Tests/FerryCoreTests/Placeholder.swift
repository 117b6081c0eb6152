// Replaced by the typed-value tests of the pipeline issue.
import Testing
