"""`tasktool serve`: a task's model behind an HTTP API (tasktool.api.serve)."""

from __future__ import annotations

import typer

from tasktool.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    PickleOpt,
    RevisionOpt,
    TaskArg,
    TrustOpt,
    option,
)
from tasktool.cli.infer import (
    AggregationOpt,
    AnswerLengthOpt,
    BeamsOpt,
    ChunkOpt,
    CompileOpt,
    LanguageOpt,
    MaxLengthOpt,
    NewTokensOpt,
    RecheckOpt,
    SampleOpt,
    SourceLangOpt,
    StrideOpt,
    SubtaskOpt,
    TargetLangOpt,
    TemperatureOpt,
    ThresholdOpt,
    TimestampsOpt,
    TopKOpt,
    TopPOpt,
    WorkersOpt,
)

HELP = """Serve a task's model over HTTP: POST /v1/infer answers with the records `tasktool infer` writes.

Requests that arrive together run as one batch. GET /health, GET /v1/info, OpenAPI docs at /docs; chat models also answer OpenAI-style POST /v1/chat/completions.

SIGTERM or Ctrl-C: stop accepting, answer the requests in flight, exit 0.

Examples:

  tasktool serve sentiment --model sentiment-model --port 8000

  curl -s localhost:8000/v1/infer -H 'content-type: application/json' -d '{"inputs": ["Great film"]}'

  TASKTOOL_API_KEY=s3cret tasktool serve detect --host 0.0.0.0 --threshold 0.7
"""

G_NET, G_BATCH, G_LIMITS, G_MODEL, G_TASK = (
    "Network",
    "Batching",
    "Limits",
    "Model and device",
    "Task options",
)

HostOpt = option(str, "Interface to listen on (0.0.0.0: every interface; then set an API key).", G_NET)
PortOpt = option(int, "Port (0: any free port).", G_NET)
ApiKeyOpt = option(
    str | None,
    "Require this key on every request (Authorization: Bearer KEY or X-API-Key). Prefer the "
    "TASKTOOL_API_KEY variable: command lines are visible to other users.",
    G_NET,
    "--api-key",
    show_default=False,
)
AccessLogOpt = option(bool, "Log every request (method, path, status).", G_NET, "--access-log")
MaxBatchOpt = option(int, "Most inputs run together in one batch.", G_BATCH, min=1)
MaxTokensOpt = option(int | None, "Cap padded tokens per batch as well.", G_BATCH)
MaxWaitOpt = option(
    float, "How long a request waits for others to batch with (milliseconds).", G_BATCH, min=0
)
MaxMbOpt = option(float, "Largest request body in MB (refused before it is parsed).", G_LIMITS)
MaxInputsOpt = option(int, "Most inputs in one request.", G_LIMITS, min=1)
TimeoutOpt = option(float, "Seconds a request may take before it gets a 503.", G_LIMITS, "--timeout")
MaxQueueOpt = option(int, "Inputs waiting for the model before new requests get a 503.", G_LIMITS, min=1)
UrlsOpt = option(
    bool,
    "Media inputs may be http(s) URLs that the server fetches.",
    G_LIMITS,
    "--url-inputs/--no-url-inputs",
)
GraceOpt = option(float, "On SIGTERM: seconds to let requests in flight finish.", G_LIMITS)


def serve(
    task: TaskArg,
    model: ModelOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key: ApiKeyOpt = None,
    access_log: AccessLogOpt = False,
    max_batch_size: MaxBatchOpt = 32,
    max_batch_tokens: MaxTokensOpt = None,
    max_wait_ms: MaxWaitOpt = 5.0,
    max_request_mb: MaxMbOpt = 20.0,
    max_inputs: MaxInputsOpt = 256,
    timeout: TimeoutOpt = 60.0,
    max_queue: MaxQueueOpt = 4096,
    url_inputs: UrlsOpt = True,
    graceful_timeout: GraceOpt = 8.0,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    workers: WorkersOpt = None,
    compile: CompileOpt = False,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
    max_length: MaxLengthOpt = None,
    top_k: TopKOpt = None,
    aggregation: AggregationOpt = "simple",
    max_new_tokens: NewTokensOpt = None,
    num_beams: BeamsOpt = None,
    do_sample: SampleOpt = False,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    source_lang: SourceLangOpt = None,
    target_lang: TargetLangOpt = None,
    stride: StrideOpt = 128,
    max_answer_length: AnswerLengthOpt = 30,
    threshold: ThresholdOpt = 0.5,
    chunk_length: ChunkOpt = None,
    language: LanguageOpt = None,
    return_timestamps: TimestampsOpt = False,
    subtask: SubtaskOpt = "panoptic",
    recheck_margin: RecheckOpt = None,
):
    import gc

    from tasktool.api import serve as run
    from tasktool.cli.common import check_choice
    from tasktool.runtime import DEVICES, DTYPES

    check_choice("--aggregation", aggregation, ("none", "simple", "first", "average", "max"))
    check_choice("--subtask", subtask, ("panoptic", "semantic", "instance"))
    check_choice("--device", device, DEVICES)
    check_choice("--dtype", dtype, DTYPES)
    run(
        task,
        model,
        host=host,
        port=port,
        api_key=api_key,
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_request_mb=max_request_mb,
        max_inputs=max_inputs,
        timeout_s=timeout,
        max_queue=max_queue,
        allow_urls=url_inputs,
        graceful_timeout_s=graceful_timeout,
        access_log=access_log,
        revision=revision,
        device=device,
        dtype=dtype,
        workers=workers,
        compile=compile,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        max_length=max_length,
        top_k=top_k,
        aggregation=aggregation,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        source_lang=source_lang,
        target_lang=target_lang,
        stride=stride,
        max_answer_length=max_answer_length,
        threshold=threshold,
        chunk_length=chunk_length,
        language=language,
        return_timestamps=return_timestamps,
        subtask=subtask,
        recheck_margin=recheck_margin,
    )
    # The process ends next: keep the model's objects out of the interpreter's last garbage collections
    # (they walk every object; the memory goes back to the system anyway), so a stopped server is gone
    # soon after its last answer.
    gc.freeze()


def register(app: typer.Typer) -> None:
    app.command("serve", help=HELP, no_args_is_help=True)(serve)
