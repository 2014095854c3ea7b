"""automatic-speech-recognition: transcribe speech (Whisper seq2seq, Wav2Vec2-style CTC), long audio chunked."""
