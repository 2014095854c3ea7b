"""fill-mask: the most likely words for a masked position (BERT-style masked language models)."""
