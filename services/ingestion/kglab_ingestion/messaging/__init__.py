"""Events the ingestion service consumes and publishes."""
