"""--push-to-hub REPO: share a finished run on the Hugging Face Hub with huggingface_hub.

Everything that can fail without training is checked first (`preflight`): the repo name, HF_HUB_OFFLINE,
a token (HF_TOKEN or a stored login), that the Hub answers within a few seconds and accepts the token.
Only then does training start; after a successful run `push` uploads the output folder's model, card,
metrics, curves and recipe (never checkpoints, tracker runs, the held-out data, or the token, which is
read from the environment and never written anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasktool.errors import FAILURE, TaskToolError

IGNORED = ["checkpoints/*", "runs/*", "mlruns/*", "wandb/*", "eval.jsonl", "*.tmp", "*.partial", ".*"]
TIMEOUT_S = 5.0


@dataclass
class HubTarget:
    repo_id: str
    private: bool = False
    token: str | None = field(default=None, repr=False)  # never printed
    user: str | None = None


def preflight(recipe: dict) -> HubTarget:
    """A one-line error now, before any data or model is read, for anything that would stop the upload."""
    from tasktool.hub import offline

    repo = str(recipe.get("push_to_hub") or "").strip()
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(repo)
    except Exception as exc:  # huggingface_hub's HFValidationError
        raise TaskToolError(
            f"--push-to-hub '{repo}' is not a valid Hub repo name", "use NAME or USER/NAME, e.g. me/my-model"
        ) from exc
    if offline():
        raise TaskToolError(
            "--push-to-hub: the Hub is offline here (HF_HUB_OFFLINE=1)",
            "unset HF_HUB_OFFLINE where the Hub can be reached, or drop --push-to-hub",
        )
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise TaskToolError(
            "--push-to-hub needs a Hugging Face token", "set HF_TOKEN (a write token) or run `hf auth login`"
        )
    reachable()
    user = whoami(token)
    return HubTarget(repo_id=repo, private=bool(recipe.get("hub_private")), token=token, user=user)


def reachable() -> None:
    """A HEAD request to the Hub's endpoint with a short timeout."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=TIMEOUT_S)
    except Exception as exc:  # connection refused, DNS, timeout: whatever the HTTP client raises
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise TaskToolError(
            f"--push-to-hub: cannot reach the Hub at {constants.ENDPOINT} ({reason})",
            "check the network (or HF_ENDPOINT), or drop --push-to-hub and upload later with `hf upload`",
            exit_code=FAILURE,
        ) from exc


def whoami(token: str) -> str | None:
    from huggingface_hub import HfApi

    try:
        info = HfApi().whoami(token=token)
    except Exception as exc:  # 401: a wrong or expired token
        raise TaskToolError(
            "--push-to-hub: the Hub did not accept the token (HF_TOKEN or the stored login)",
            "check the token has write access, or drop --push-to-hub",
            exit_code=FAILURE,
        ) from exc
    return info.get("name") if isinstance(info, dict) else None


def push(target: HubTarget, folder: Path) -> str:
    """Create the repo (if needed) and upload the output folder; returns the repo's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(target.repo_id, token=target.token, private=target.private, exist_ok=True)
        api.upload_folder(
            repo_id=target.repo_id,
            folder_path=str(folder),
            token=target.token,
            commit_message="Upload a model fine-tuned with tasktool",
            ignore_patterns=IGNORED,
        )
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise TaskToolError(
            f"the model was saved to {folder.name}/, but the upload to {target.repo_id} failed: {reason}",
            f"retry with `hf upload {target.repo_id} {folder.name}`",
            exit_code=FAILURE,
        ) from exc
    return str(url)
