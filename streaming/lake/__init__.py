"""Kafka → S3 data lake (Parquet), exactly once, as a Spark Structured Streaming job.

`job.run_lake_stream` is the entry point; `parse.lake_rows` the one transformation (in the
`sink`'s tasks, or `parse.parse_events` for Spark's own sinks);
`layout` the object names other work reads (events, rejects, per-batch manifests).
Nothing here imports pyspark at package import, so the CLI stays fast.
"""
