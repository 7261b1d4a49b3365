"""Edges of truthstream: Kafka I/O, embedded services and synthetic workloads."""
