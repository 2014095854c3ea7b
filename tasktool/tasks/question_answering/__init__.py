"""question-answering (extractive, SQuAD style): the span of a context that answers a question."""
