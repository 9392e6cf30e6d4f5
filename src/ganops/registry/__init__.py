"""MLflow tracking, model registration and gated promotion."""
