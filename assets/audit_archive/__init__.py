"""Audit archive: each day of the hash-chained audit log as a checksummed S3 object."""
