"""Training: mining focal-method/test pairs and fine-tuning adapters (and pre-training unitune-mini)."""
