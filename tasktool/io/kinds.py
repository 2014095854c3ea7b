"""Input kinds: how command-line inputs become payloads (a task names its kind in the registry)."""

TEXT, PAIR, AUDIO, IMAGE = "text", "question+context", "audio", "image"
