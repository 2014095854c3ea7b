"""`tasktool serve`: the real server on a free port, driven by a real HTTP client (httpx).

In-process servers (uvicorn in a thread) answer the batching, bad-request, media and chat tests; the
SIGTERM test runs `python -m tasktool serve` as its own process. Models are tiny and random: what is
checked is that the server gives exactly what `tasktool infer` gives, and how it behaves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, assert_user_error

import tasktool.api as api
from tasktool.inference import build_predictor
from tasktool.io.records import to_jsonable
from tasktool.options import InferOptions
from tasktool.tasks.registry import resolve

KEY = "test-key-not-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
LABELS = ["neg", "neu", "pos"]
AUDIO = [FIXTURES / "audio" / n for n in ("3_jackson_5.wav", "7_george_5.wav", "LJ001-0002.flac")]
IMAGES = [FIXTURES / "images" / n for n in ("cat.jpg", "chelsea.png", "dog.jpg")]
WORDS = "the film was great dull long short bright dark story actor scene music plot ending".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 24))) for _ in range(n)]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@contextlib.contextmanager
def running(app):
    """Serve `app` with uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def serve_model(task: str, model, **app_kwargs):
    from tasktool.serve.app import create_app

    spec = resolve(task)
    opts = InferOptions(model=str(model))
    return running(create_app(spec, opts, build_predictor(spec, opts), **app_kwargs))


def _healthy(url: str, headers=None) -> None:
    response = httpx.get(f"{url}/health", headers=headers, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def _json_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert isinstance(error, str) and "\n" not in error
    for word in words:
        assert word.lower() in error.lower(), (word, error)


# ------------------------------------------------------------------------- text: batching, bad requests


@pytest.fixture(scope="module")
def classifier(tiny):
    return tiny("text-classification", labels=LABELS)


@pytest.fixture(scope="module")
def text_server(classifier):
    from tasktool.serve.limits import Limits

    limits = Limits(api_key=KEY, max_request_mb=1, max_inputs=64)
    with serve_model("text-classification", classifier, limits=limits, max_wait_ms=10) as url:
        yield url


async def _burst(url: str, bodies: list[dict], concurrency: int, headers=None) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(body):
            async with gate:
                return await client.post("/v1/infer", json=body)

        return await asyncio.gather(*(one(b) for b in bodies))


@pytest.mark.slow
def test_200_concurrent_requests_32_at_a_time_get_the_records_tasktool_infer_writes(text_server, classifier):
    texts = _texts(200)
    expected = api.infer("text-classification", texts, model=str(classifier))
    bodies = [{"inputs": [text]} for text in texts]
    responses = asyncio.run(_burst(text_server, bodies, 32, AUTH))
    assert [r.status_code for r in responses] == [200] * 200
    got = [r.json()["records"] for r in responses]
    assert all(len(records) == 1 and records[0]["id"] == 0 for records in got)
    assert [records[0]["input"] for records in got] == texts
    assert [records[0]["label"] for records in got] == [r["label"] for r in expected]
    for records, want in zip(got, expected, strict=True):
        assert records[0]["score"] == pytest.approx(want["score"], abs=1e-5)
    health = httpx.get(f"{text_server}/health", headers=AUTH).json()
    assert health["largest_batch"] > 1, "concurrent requests ran one by one"
    assert health["batches"] < health["requests"]


def test_one_request_with_several_inputs_keeps_ids_order_and_the_bad_input_alone(text_server, classifier):
    inputs = ["a great film", {"id": "second", "text": "dull and long"}, "", {"text": "bright story"}]
    response = httpx.post(f"{text_server}/v1/infer", json={"inputs": inputs}, headers=AUTH)
    assert response.status_code == 200
    records = response.json()["records"]
    assert [r["id"] for r in records] == [0, "second", 2, 3]
    assert "empty input text" in records[2]["error"]
    expected = api.infer("text-classification", ["a great film", "dull and long"], model=str(classifier))
    assert [records[0]["label"], records[1]["label"]] == [r["label"] for r in expected]
    assert all(r["label"] in LABELS for r in (records[0], records[1], records[3]))


BAD_REQUESTS = [
    (
        "invalid JSON",
        {"content": b'{"inputs": [', "headers": {"content-type": "application/json"}},
        400,
        "JSON",
    ),
    ("empty body", {"content": b""}, 400, "empty body"),
    ("missing inputs", {"json": {"texts": ["x"]}}, 422, '"inputs"'),
    ("empty list", {"json": {"inputs": []}}, 422, "empty"),
    ("not an object", {"json": ["x"]}, 422, "JSON object"),
    ("wrong input type", {"json": {"inputs": ["ok", 3]}}, 422, "inputs[1]"),
    ("too many inputs", {"json": {"inputs": ["x"] * 65}}, 413, "at most 64"),
    ("oversized body", {"json": {"inputs": ["word " * 300_000]}}, 413, "too large"),
    ("only an empty text", {"json": {"inputs": [""]}}, 422, "empty input text"),
    ("column not a string", {"json": {"inputs": ["x"], "column": 3}}, 422, '"column" must be a string'),
    ("unknown column", {"json": {"inputs": [{"txt": "x", "lang": "en"}]}}, 422, "no text column"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_its_4xx_as_one_json_line_and_the_server_stays_healthy(text_server, case):
    _, kwargs, status, word = case
    response = httpx.post(f"{text_server}/v1/infer", headers=AUTH | kwargs.pop("headers", {}), **kwargs)
    _json_error(response, status, word)
    _healthy(text_server, AUTH)


def test_a_missing_or_wrong_api_key_gets_401_on_every_route(text_server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}):
        for method, path in (
            ("POST", "/v1/infer"),
            ("GET", "/health"),
            ("GET", "/v1/info"),
            ("GET", "/docs"),
        ):
            response = httpx.request(method, f"{text_server}{path}", json={"inputs": ["x"]}, headers=headers)
            _json_error(response, 401, "API key")
            assert KEY not in response.text
    ok = httpx.post(f"{text_server}/v1/infer", json={"inputs": ["x"]}, headers={"X-API-Key": KEY})
    assert ok.status_code == 200


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(text_server):
    with socket.create_connection(("127.0.0.1", int(text_server.rsplit(":", 1)[1])), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )  # no body sent: the answer comes from the headers alone
        head = conn.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and "too large" in head


def test_info_and_docs_describe_the_served_model(text_server, classifier):
    info = httpx.get(f"{text_server}/v1/info", headers=AUTH).json()
    assert info["task"] == "text-classification" and info["model"] == str(classifier)
    assert info["labels"] == LABELS and info["input_kind"] == "text" and info["chat"] is False
    assert info["limits"]["api_key_required"] is True and KEY not in json.dumps(info)
    schema = httpx.get(f"{text_server}/openapi.json", headers=AUTH).json()
    assert {"/v1/infer", "/health", "/v1/info", "/v1/chat/completions"} <= set(schema["paths"])
    assert httpx.get(f"{text_server}/docs", headers=AUTH).status_code == 200


def test_chat_on_a_model_without_chat_support_is_a_501(text_server):
    body = {"messages": [{"role": "user", "content": "hi"}]}
    _json_error(
        httpx.post(f"{text_server}/v1/chat/completions", json=body, headers=AUTH), 501, "no chat support"
    )


def test_question_answering_inputs_are_read_as_the_cli_reads_rows(tmp_path):
    from tasktool.serve.inputs import BadRequest, Uploads, json_items

    def items(body):
        return [(i.id, i.payload) for i in json_items("question+context", body, Uploads(tmp_path), 8, True)]

    pair = {"question": "Who?", "context": "Ada wrote it."}
    assert items({"inputs": [pair, {**pair, "id": "q2"}]}) == [(0, pair), ("q2", pair)]
    assert items({"inputs": ["Who?"], "context": "Ada wrote it."}) == [(0, pair)]
    with pytest.raises(BadRequest, match="needs a question and a context"):
        items({"inputs": ["Who?"]})


# ------------------------------------------------------------------------- audio and images


def test_audio_as_base64_data_uri_and_upload_gets_the_labels_tasktool_infer_gives(tiny):
    model = tiny("audio-classification", labels=["zero", "three", "seven", "nine"])
    expected = api.infer("audio-classification", [str(p) for p in AUDIO], model=str(model))
    with serve_model("audio-classification", model) as url:
        inputs = [
            _b64(AUDIO[0]),  # bare base64: the format is sniffed from the bytes
            {"base64": _b64(AUDIO[1]), "name": AUDIO[1].name, "id": "george"},
            "data:audio/flac;base64," + _b64(AUDIO[2]),
        ]
        records = httpx.post(f"{url}/v1/infer", json={"inputs": inputs}, timeout=60).json()["records"]
        assert [r["id"] for r in records] == [0, "george", 2]
        assert records[1]["input"] == AUDIO[1].name
        assert [r["label"] for r in records] == [r["label"] for r in expected]
        files = [("file", (p.name, p.read_bytes())) for p in AUDIO]
        uploaded = httpx.post(f"{url}/v1/infer", files=files, timeout=60).json()["records"]
        assert [r["input"] for r in uploaded] == [p.name for p in AUDIO]
        assert [r["label"] for r in uploaded] == [r["label"] for r in expected]
        # a bad clip fails alone; alone in its request it is a 422; a server path is never read
        garbage = base64.b64encode(b"not audio at all" * 10).decode()
        mixed = httpx.post(f"{url}/v1/infer", json={"inputs": [garbage, _b64(AUDIO[0])]}, timeout=60)
        assert mixed.status_code == 200
        bad, good = mixed.json()["records"]
        assert "cannot decode audio" in bad["error"] and "tasktool-serve" not in bad["error"]
        assert good["label"] == expected[0]["label"]
        _json_error(httpx.post(f"{url}/v1/infer", json={"inputs": [garbage]}), 422, "cannot decode audio")
        _json_error(httpx.post(f"{url}/v1/infer", json={"inputs": [str(AUDIO[0])]}), 422, "not base64")
        _healthy(url)


def test_images_as_base64_upload_and_url_get_the_labels_tasktool_infer_gives(tiny, tmp_path):
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    model = tiny("image-classification", labels=["cat", "dog", "bird"])
    expected = api.infer("image-classification", [str(p) for p in IMAGES], model=str(model))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    files_server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(IMAGES[0].parent)))
    threading.Thread(target=files_server.serve_forever, daemon=True).start()
    try:
        with serve_model("image-classification", model) as url:
            image_url = f"http://127.0.0.1:{files_server.server_address[1]}/{IMAGES[2].name}"
            inputs = [{"base64": _b64(IMAGES[0]), "name": "cat.jpg"}, _b64(IMAGES[1]), {"url": image_url}]
            records = httpx.post(f"{url}/v1/infer", json={"inputs": inputs}, timeout=60).json()["records"]
            assert [r["label"] for r in records] == [r["label"] for r in expected]
            assert records[0]["input"] == "cat.jpg" and records[2]["input"] == image_url
            files = [("file", (p.name, p.read_bytes(), "image/" + p.suffix[1:])) for p in IMAGES]
            uploaded = httpx.post(f"{url}/v1/infer", files=files, timeout=60).json()["records"]
            assert [r["label"] for r in uploaded] == [r["label"] for r in expected]
            assert [r["labels"] for r in uploaded] == [to_jsonable(r["labels"]) for r in expected]
            undecodable = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
            response = httpx.post(
                f"{url}/v1/infer", json={"inputs": [{"base64": undecodable, "name": "x.png"}]}
            )
            _json_error(response, 422, "cannot read image 'x.png'")
            _healthy(url)
    finally:
        files_server.shutdown()


# ------------------------------------------------------------------------- chat (a fake predictor)


class ChatPredictor:
    """Stands in for a chat model: the interface /v1/chat/completions expects of a predictor."""

    def __init__(self):
        self.seen: list = []

    def chat(self, messages, **options):
        self.seen.append((messages, options))
        if messages[-1]["role"] not in ("user", "system", "assistant"):
            from tasktool.errors import TaskToolError

            raise TaskToolError(f"unknown role '{messages[-1]['role']}'", "use system, user or assistant")
        return {"text": "echo: " + messages[-1]["content"], "prompt_tokens": 3, "completion_tokens": 2}

    def chat_stream(self, messages, **options):
        yield from ("echo", ": ", messages[-1]["content"])


@pytest.fixture(scope="module")
def chat_server():
    from tasktool.serve.app import create_app

    predictor = ChatPredictor()
    opts = InferOptions(model="fake-chat-model")
    with running(create_app(resolve("text-generation"), opts, predictor)) as url:
        yield url, predictor


def test_chat_completions_answers_as_openai_does_with_the_clients_options(chat_server):
    url, predictor = chat_server
    body = {
        "model": "whatever",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "max_tokens": 7,
        "temperature": 0.5,
        "stop": "\n",
    }
    reply = httpx.post(f"{url}/v1/chat/completions", json=body).json()
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello"}
    assert reply["choices"][0]["finish_reason"] == "stop" and reply["usage"]["total_tokens"] == 5
    messages, options = predictor.seen[-1]
    assert messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert options == {"max_new_tokens": 7, "temperature": 0.5, "stop": ["\n"]}


def test_chat_stream_true_sends_server_sent_events_ending_with_done(chat_server):
    url, _ = chat_server
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "echo: hi there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_bad_requests_are_json_4xx(chat_server):
    url, _ = chat_server

    def post(kwargs):
        return httpx.post(f"{url}/v1/chat/completions", **kwargs)

    _json_error(post({"content": b"{not json"}), 400, "JSON")
    _json_error(post({"json": {"messages": []}}), 422, "messages")
    _json_error(post({"json": {"messages": [{"role": "user", "content": "x"}], "n": 2}}), 422, "n")
    _json_error(post({"json": {"messages": [{"role": "robot", "content": "x"}]}}), 422, "unknown role")
    assert post({"json": {"messages": [{"role": "user", "content": "x"}]}}).status_code == 200


# ------------------------------------------------------------------------- failures (a fake predictor)


class Upper:
    """A predictor without a model: labels are the upper-cased text; "boom" breaks a whole batch, "slow"
    takes a second."""

    window = None

    def prepare_many(self, payloads):
        return list(payloads)

    def length(self, prepared):
        return len(prepared)

    def concurrent_batches(self):
        return False

    def predict(self, batch):
        if "boom" in batch:
            raise RuntimeError("the model broke")
        if "slow" in batch:
            time.sleep(1.0)
        return [{"label": text.upper()} for text in batch]


@pytest.fixture(scope="module")
def fake_server():
    from tasktool.serve.app import create_app
    from tasktool.serve.limits import Limits

    app = create_app(
        resolve("text-classification"),
        InferOptions(model="upper"),
        Upper(),
        Limits(timeout_s=0.3),
        max_wait_ms=50,
    )
    with running(app) as url:
        yield url


def test_a_batch_that_breaks_fails_only_the_request_that_broke_it(fake_server):
    bodies = [{"inputs": ["a"]}, {"inputs": ["boom"]}, {"inputs": ["b", "c"]}]
    responses = asyncio.run(_burst(fake_server, bodies, 3))
    # the engine isolates the input that breaks its batch: an error record, and a request whose every
    # input failed is a 422; the other requests are answered
    assert [r.status_code for r in responses] == [200, 422, 200]
    assert [r["label"] for r in responses[2].json()["records"]] == ["B", "C"]
    _json_error(responses[1], 422, "the model broke")
    _healthy(fake_server)


def test_a_request_past_its_timeout_gets_503_and_the_server_goes_on(fake_server):
    _json_error(httpx.post(f"{fake_server}/v1/infer", json={"inputs": ["slow"]}), 503, "timed out")
    time.sleep(1.0)  # the worker finishes the slow batch; its answer is dropped
    assert httpx.post(f"{fake_server}/v1/infer", json={"inputs": ["x"]}).json()["records"][0]["label"] == "X"


# ------------------------------------------------------------------------- the process: stop, ports


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_sigterm_during_a_burst_answers_every_accepted_request_and_exits_0_within_10_s(classifier):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tasktool",
            "serve",
            "sentiment",
            "--model",
            str(classifier),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        texts = _texts(400, seed=7)  # while the server starts
        expected = {
            r["input"]: r["label"] for r in api.infer("text-classification", texts, model=str(classifier))
        }
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stderr.read() if proc.poll() else ""
            )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        answered_before: list[int] = []
        signalled = {}

        def exited():
            proc.wait()
            signalled["exited"] = time.monotonic()

        async def burst():
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
                gate = asyncio.Semaphore(32)
                done = 0

                async def one(text):
                    nonlocal done
                    async with gate:
                        try:
                            response = await client.post("/v1/infer", json={"inputs": [text]})
                        except httpx.TransportError as exc:  # refused or closed before it was read
                            return text, exc
                        done += 1
                        if done == 64:
                            answered_before.append(done)
                            signalled["at"] = time.monotonic()
                            proc.send_signal(signal.SIGTERM)
                            threading.Thread(target=exited, daemon=True).start()
                        return text, response

                return await asyncio.gather(*(one(t) for t in texts))

        results = asyncio.run(burst())
        code = proc.wait(timeout=15)
        time.sleep(0.1)
        stopped_after = signalled["exited"] - signalled["at"]
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert code == 0, err
    assert stopped_after < 10
    responses = [r for _, r in results if isinstance(r, httpx.Response)]
    for text, r in results:
        if isinstance(r, httpx.Response):
            assert r.status_code == 200, r.text
            assert r.json()["records"][0]["label"] == expected[text]
    assert len(responses) > answered_before[0], "no request in flight at SIGTERM was answered"
    assert len(responses) < len(texts), "the burst ended before the signal took effect"
    # the server's own count: every request that reached it was answered (health polls included)
    line = next(ln for ln in err.splitlines() if ln.startswith("stopped:"))
    answered, accepted = (int(x) for x in line.split()[1:4:2])
    assert answered == accepted


def test_a_taken_port_is_a_one_line_error_before_the_model_loads(cli, classifier):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cli("serve", "sentiment", "--model", classifier, "--port", taken.getsockname()[1])
    assert_user_error(result, "cannot listen", "--port")


def test_bad_serve_options_are_one_line_errors(cli, classifier):
    assert_user_error(
        cli("serve", "sentiment", "--model", classifier, "--max-request-mb", "0"), "max-request-mb"
    )
    assert_user_error(cli("serve", "sentiment", "--model", classifier, "--port", "70000"), "port")
    # the infer options are checked as `tasktool infer` checks them, before the port is taken
    assert_user_error(cli("serve", "sentiment", "--model", classifier, "--top-k", "0"), "--top-k", code=2)
    assert_user_error(
        cli("serve", "fill-mask", "--model", classifier, "--recheck-margin", "0.5"),
        "--recheck-margin",
        code=2,
    )


# ------------------------------------------------------------------------- chat with a real chat model


@pytest.fixture(scope="module")
def llama(tiny):
    return tiny("text-generation", family="llama", init_std=0.2)


@pytest.mark.slow
def test_chat_completions_on_a_real_chat_model_equal_infer_and_stream_the_same_text(cli, llama):
    """The OpenAI endpoint runs the text-generation predictor's chat path: the same reply `tasktool
    infer` gives for the conversation (greedy), whole or streamed."""
    messages = [{"role": "user", "content": "name a river"}]
    row = json.dumps({"messages": messages})
    shown = cli("infer", "generate", "-", "--model", llama, "--max-new-tokens", "6", input=row + "\n")
    assert shown.code == 0, shown.err
    expected = shown.records()[0]["response"]
    spec = resolve("text-generation")
    opts = InferOptions(model=str(llama), max_new_tokens=6)
    from tasktool.serve.app import create_app

    with running(create_app(spec, opts, build_predictor(spec, opts))) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": messages}, timeout=60).json()
        assert reply["choices"][0]["message"]["content"] == expected
        assert reply["usage"]["completion_tokens"] >= 1
        body = {"messages": messages, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert streamed.strip() == expected
