"""Text-to-motion generator: the LLaMA-style prefix-LM, its presets and trainer, parallelism, and the one decode engine."""
