"""audio-classification: the top-k labels of a clip (keyword spotting, sound events, spoken digits)."""
