"""The model runtime: base model loading, the adapter registry, switching and generation."""
