"""text-generation: continue a prompt with a causal language model (GPT-2 style)."""
