"""text-classification: one label (or top-k labels) per sentence or sentence pair."""
