"""ganops: a reproducible GAN factory driven by one params.yaml."""

__version__ = "0.1.0"
