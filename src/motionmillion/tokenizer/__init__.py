"""FSQ motion tokenizer with wavelet patching: model, training, evaluation, dataset encoding."""
