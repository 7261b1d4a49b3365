"""truthstream: a streaming model-quality monitor (the SageMaker Model Monitor model-quality job, continuously)."""

__version__ = "0.1.0"
