"""Search: Optuna over BERT architectures under a latency budget."""
