"""Text-to-motion generator: text encoders, the LLaMA prefix-LM, training and sampling."""
