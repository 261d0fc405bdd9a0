"""Batch scoring job: scores CSV/JSONL/Parquet posts with a bundle, in parallel Cloud Run tasks."""
