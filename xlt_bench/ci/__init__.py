"""ci stage."""
