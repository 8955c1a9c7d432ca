"""batching stage."""
