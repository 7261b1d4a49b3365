"""Everything a person runs, and the outside world: `cli` and `commands/` (one module per command),
Kafka producers and readers, consumer groups, S3 and webhooks, SageMaker file sources, tables,
replay, charts, embedded services and the demo. Depends on `stream`; nothing depends on it."""
