"""Safe by default: no remote code, no pickle weights, no token in output, unless the user asks."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import assert_user_error


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-classification", labels=["NEG", "POS"])


def test_pickle_weights_need_allow_pickle(cli, model, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(model, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert_user_error(cli("infer", "sentiment", "hello", "--model", folder), "pickle", "--allow-pickle")
    allowed = cli("infer", "sentiment", "hello", "--model", folder, "--allow-pickle")
    assert allowed.code == 0, allowed.err
    assert allowed.records()[0]["label"] in ("NEG", "POS")


def test_remote_code_is_not_run_without_trust_remote_code(cli, model, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(model, folder)
    marker = tmp_path / "ran"
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "custom.MyConfig",
        "AutoModelForSequenceClassification": "custom.MyModel",
    }
    config["model_type"] = "my-custom"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import BertConfig as MyConfig\n"
    )
    result = cli("infer", "sentiment", "hello", "--model", folder)
    assert_user_error(result, "--trust-remote-code")
    assert not marker.exists()


def test_hf_token_is_never_printed(cli, monkeypatch):
    secret = "hf_" + "x" * 30
    monkeypatch.setenv("HF_TOKEN", secret)
    result = cli("env", "--format", "json")
    assert result.code == 0
    assert secret not in result.out + result.err
    assert json.loads(result.out)["hf_token_set"] is True
