"""Training: mining focal-method/test pairs, fine-tuning adapters, evaluation and scoring."""
