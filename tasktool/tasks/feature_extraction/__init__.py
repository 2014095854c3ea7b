"""feature-extraction: a sentence embedding per text (mean or [CLS] pooling of an encoder, as the
model's sentence-transformers settings say), and the cosine similarity of sentence pairs."""
