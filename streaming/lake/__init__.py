"""Kafka → S3 data lake (Parquet), exactly once, as a Spark Structured Streaming job.

`job.run_lake_stream` is the entry point; `parse.parse_events` the one transformation;
`layout` the object names other work reads (events, rejects, per-batch manifests).
Nothing here imports pyspark at package import, so the CLI stays fast.
"""
