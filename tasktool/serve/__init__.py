"""`tasktool serve`: a task's model behind an HTTP API (FastAPI + uvicorn) with dynamic batching.

    app.py      the routes: /v1/infer, /health, /v1/info, /v1/chat/completions (OpenAI-compatible)
    batcher.py  dynamic batching: requests arriving together run as one engine batch on one thread
    inputs.py   a request's inputs -> the engine's Items (io.inputs; media as base64, URL or upload)
    limits.py   API key, body size, counts: checked before anything parses a request
    chat.py     the OpenAI chat request/response shapes over the predictor's chat hooks
    server.py   load the model, bind, run uvicorn, stop cleanly on SIGTERM / Ctrl-C

Only the command line (cli/serve.py) and tasktool.api.serve import this package; importing it pulls in
FastAPI, so nothing on the `tasktool --help` path does.
"""
