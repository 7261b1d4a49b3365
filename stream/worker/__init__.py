"""The worker: the Faust app and its agent (`app`), the service that batches input and publishes
(`service`, `publish`), the engine in a process of its own (`engine_process`), outage handling
(`outages`), batching and the inline hand-over (`batching`, `transport`), topic set-up (`topics`),
the worker's Prometheus metrics (`observe`) and its event loop and collector (`runtime`)."""
