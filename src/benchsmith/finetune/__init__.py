"""Fine-tuning datasets from agent trajectories: load and check attempts (trajectories),
drop unusable ones (filters), turn them into positive, reflection and preference pairs
(pairs, prompts), split by instance (split), write them in the common formats (formats,
build), count their tokens (tokens) and check OpenAI chat files (check). Attempts also
come from bug-fixer run dirs and SWE-agent trajectories with a SWE-bench evaluation report
(adapters, harness_eval, swe_agent); failures.py names a failed attempt's category."""
