"""`xlt-bench sweep`: a grid of runs, split into shards, run locally or on a Ray cluster, resumable, merged."""
