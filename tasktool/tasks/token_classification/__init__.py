"""token-classification (NER, POS): one tag per word, grouped into entities at inference."""
