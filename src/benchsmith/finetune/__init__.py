"""Fine-tuning datasets from agent trajectories and benchsmith runs."""
