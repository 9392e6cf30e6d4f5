"""The GAN training loop and its helpers (EMA, checkpoints)."""
