"""``wacse push``: the folder check, the model card, the upload plan and the HfApi calls, all offline.

The Hub is replaced by a recording fake at the ``HfApi`` boundary; failures are the exception
classes huggingface_hub itself raises.
"""
import json
import shutil

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import ModelCard, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from wacse_cli import card as model_card
from wacse_cli import upload
from wacse_cli.model import load_encoder

TOKEN = "hf_wacseTestTokenDoNotPrint0123456789"
DEV = {"en-jv": {"src2tgt": 0.81, "tgt2src": 0.77, "mean": 0.79, "n_pairs": 200},
       "en-kk": {"src2tgt": 0.64, "tgt2src": 0.6, "mean": 0.62, "n_pairs": 200}}
META = {
    "wacse_version": "0.1.0",
    "base_model": "intfloat/multilingual-e5-small",
    "recipe": {"name": "low-resource-2", "languages": ["jv", "kk"], "data": "data/en-{lang}.tsv", "lr": 2e-5,
               "steps": 300, "batch_size": 64, "losses": {"tr": 0.8, "awp": 0.1, "wtr": 0.1, "rtl": 0.0},
               "align": {"aligner": "wspalign", "model": "qiyuw/WSPAlign-ft-kftt", "threshold": 0.5}},
    "training": {"steps": 300, "best_step": 300, "batch_size": 64, "train_pairs": 3600,
                 "data": ["en-jv.tsv", "en-kk.tsv"], "languages": ["jv", "kk"],
                 "losses": {"tr": 0.8, "awp": 0.1, "wtr": 0.1, "rtl": 0.0}, "aligner": "wspalign",
                 "align_model": "qiyuw/WSPAlign-ft-kftt", "threshold": 0.5, "wall_time_s": 812.4,
                 "license_notes": ["word alignments from WSPAlign weights (CC-BY-NC-SA 4.0)"]},
    "dev_results_before": {"step": 0, "pairs": {p: {"mean": s["mean"] - 0.2} for p, s in DEV.items()}, "mean": 0.5},
    "dev_results": {"step": 300, "pairs": DEV, "mean": 0.705},
}
MODEL_FILES = {"1_Pooling/config.json", "README.md", "config.json", "config_sentence_transformers.json",
               "model.safetensors", "modules.json", "sentence_bert_config.json", "tokenizer.json",
               "tokenizer_config.json", "wacse.json", "recipe.toml", "train_log.jsonl"}
TRAINING_STATE = ["checkpoints/step-0000300/state.pt", "checkpoints/step-0000300/COMPLETE", "optimizer.pt",
                  "scheduler.pt", "rng_state.pth", "mlm_head.safetensors", "alignments/en-kk.jsonl",
                  ".export.partial/config.json", ".wacse.json.x1y2.tmp", "__pycache__/x.pyc"]


def model_files(run):
    """MODEL_FILES plus the tokenizer files that only some transformers versions write (4.x:
    special_tokens_map.json)."""
    return MODEL_FILES | {name for name in ("special_tokens_map.json",) if (run / name).exists()}


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """A folder shaped like ``wacse train`` output, with training state that must stay local."""
    folder = tmp_path_factory.mktemp("runs") / "jv-kk"
    load_encoder(tiny_model, pooling="mean", prefix="query: ").save(folder, meta=META)
    (folder / "recipe.toml").write_text('name = "low-resource-2"\n', encoding="utf-8")
    (folder / "train_log.jsonl").write_text('{"step": 1, "loss": 2.5}\n', encoding="utf-8")
    for name in TRAINING_STATE:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"state")
    return folder


@pytest.fixture
def run(trained, tmp_path):
    path = tmp_path / "jv-kk"
    shutil.copytree(trained, path)
    return path


class FakeApi:
    """Records every call; ``fail`` maps a method name to the exception it raises."""

    def __init__(self, fail=None):
        self.calls, self.fail = [], fail or {}

    def _call(self, name, args, kwargs):
        self.calls.append((name, args, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def create_repo(self, *args, **kwargs):
        self._call("create_repo", args, kwargs)

    def create_branch(self, *args, **kwargs):
        self._call("create_branch", args, kwargs)

    def upload_folder(self, *args, **kwargs):
        self._call("upload_folder", args, kwargs)
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/user/m/commit/abc123"})()


@pytest.fixture
def online(monkeypatch):
    """Logged in with TOKEN and not offline; returns a function that installs a FakeApi."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    def install(fail=None):
        api = FakeApi(fail)
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
        return api

    return install


def http_error(status: int, server_message: str = "") -> HfHubHTTPError:
    response = httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    return HfHubHTTPError(f"{status} Client Error", response=response, server_message=server_message)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output and TOKEN not in result.output
    return lines[0]


# ----------------------------------------------------------------------------- card and plan


def test_dry_run_writes_a_card_with_the_run_results_and_lists_the_model_files(cli, run):
    result = cli("push", run, "--repo", "user/xlmr-wacse-jv-kk", "--dry-run")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["path", "bytes"] and rows[-1][0] == "total"
    listed = {path: int(size) for path, size in rows[1:-1]}
    assert set(listed) == model_files(run)
    assert listed["model.safetensors"] == (run / "model.safetensors").stat().st_size
    assert int(rows[-1][1]) == sum(listed.values())
    assert "nothing was sent" in result.stderr

    card = ModelCard.load(run / "README.md")
    data = card.data
    assert {(r.dataset_config, r.dataset_split): r.metric_value for r in data.eval_results} == {
        (pair, "dev"): s["mean"] for pair, s in DEV.items()}
    assert all(r.task_type == "bitext-mining" and r.metric_type == "accuracy" for r in data.eval_results)
    assert data.model_name == "xlmr-wacse-jv-kk"
    assert data.language == ["jv", "kk", "en"] and data.license == "mit"
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert {"wacse", "sentence-transformers", "cross-lingual"} <= set(data.tags)
    assert data.base_model == "intfloat/multilingual-e5-small"
    text = card.text
    assert "CC BY-NC-SA 4.0" in text and "2404.02490" in text
    assert "| en-kk | 200 | 42.0 | 64.0 | 60.0 | **62.0** |" in text
    assert 'SentenceTransformer("user/xlmr-wacse-jv-kk")' in text and "wacse embed" in text
    assert "× 0.8" in text and "`en-jv.tsv`, `en-kk.tsv` (3,600 sentence pairs)" in text
    assert str(run.parent) not in text  # no local paths in a public card


def test_recorded_eval_results_join_the_model_index(run, tiny_model, pairs_file, cli):
    result = cli("eval", "retrieval", pairs_file, "-m", run, "--record", "--json")
    assert result.exit_code == 0, result.output
    again = cli("eval", "retrieval", pairs_file, "-m", run, "--record")
    assert again.exit_code == 0, again.output
    stored = json.loads((run / "wacse.json").read_text(encoding="utf-8"))["eval_results"]
    assert len(stored) == 1 and stored[0]["scores"]["test"][0]["file"] == "en-kk.tsv"
    score = json.loads(result.stdout)["scores"]["test"][0]["main_score"]
    card = model_card.build_model_card(run, "user/m")
    tests = [r for r in card.data.eval_results if r.dataset_split == "test"]
    assert [(r.dataset_config, r.metric_value) for r in tests] == [("en-kk", round(score, 6))]
    assert "| en-kk.tsv | en-kk | 40 |" in card.text


def test_record_refuses_other_settings_and_other_models(cli, run, tiny_model, pairs_file):
    message = one_line_error(cli("eval", "retrieval", pairs_file, "-m", run, "--record", "--pooling", "cls"), 2)
    assert "--record cannot be combined with --pooling" in message
    message = one_line_error(cli("eval", "retrieval", pairs_file, "-m", tiny_model, "--record"), 2)
    assert "--record needs --model to be a model folder written by wacse train" in message


def test_upload_plan_leaves_training_state_behind(run):
    plan = dict(upload.upload_plan(run))
    assert set(plan) == model_files(run) - {"README.md"}
    assert not any(path.startswith(name) for path in plan for name in ("checkpoints", "alignments", "optimizer"))


def test_card_without_results_or_known_licence_still_loads(run):
    meta = {k: v for k, v in json.loads((run / "wacse.json").read_text()).items()
            if k in ("pooling", "prefix", "max_length", "languages", "lang_embedding")}
    (run / "wacse.json").write_text(json.dumps({**meta, "base_model": "/gone/local-model"}))
    card = ModelCard.load(model_card.write_model_card(run))
    assert card.data.eval_results is None and card.data.license == "other" and card.data.base_model is None
    assert "could not be determined" in card.text and "local-model" in card.text and "/gone" not in card.text


def test_hand_edited_card_is_kept_unless_asked(cli, run):
    assert cli("push", run, "--repo", "user/m", "--dry-run").exit_code == 0
    assert not model_card.card_edited(run)
    (run / "README.md").write_text((run / "README.md").read_text() + "\nMy own notes.\n")
    kept = cli("push", run, "--repo", "user/m", "--dry-run")
    assert kept.exit_code == 0 and "edited by hand" in kept.stderr
    assert "My own notes." in (run / "README.md").read_text()
    assert cli("push", run, "--repo", "user/m", "--dry-run", "--new-card").exit_code == 0
    assert "My own notes." not in (run / "README.md").read_text()


# ----------------------------------------------------------------------------- the upload


def test_push_calls_hfapi_with_exactly_what_was_asked(cli, run, online):
    api = online()
    result = cli("push", run, "--repo", "user/m", "--private", "--revision", "dev", "--commit-message", "First model")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "https://huggingface.co/user/m/commit/abc123"
    assert api.calls == [
        ("create_repo", ("user/m",), {"private": True, "exist_ok": True}),
        ("create_branch", ("user/m",), {"branch": "dev", "exist_ok": True}),
        ("upload_folder", (), {"repo_id": "user/m", "folder_path": str(run), "revision": "dev",
                               "commit_message": "First model", "ignore_patterns": list(upload.IGNORE_PATTERNS)}),
    ]
    assert ModelCard.load(run / "README.md").data.model_name == "m"


def test_push_defaults_leave_visibility_and_branch_to_the_hub(run, online):
    api = FakeApi()
    online()
    summary = upload.push(run, "user/m", api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is None and api.calls[1][2]["revision"] is None
    assert api.calls[1][2]["commit_message"].startswith("Upload sentence encoder trained with wacse")
    assert {f["path"] for f in summary["files"]} == model_files(run) and TOKEN not in json.dumps(summary)


ERRORS = {
    "403 on create_repo": ({"create_repo": http_error(403)}, "no write permission to 'user' on the Hugging Face Hub"),
    "401 on upload": ({"upload_folder": http_error(401)}, "no write permission to 'user' on the Hugging Face Hub"),
    "connection": ({"upload_folder": httpx2.ConnectError("connection refused")},
                   "network failure talking to the Hugging Face Hub (ConnectError) after retries; "
                   "nothing partial was committed"),
    "timeout": ({"upload_folder": httpx2.ReadTimeout("timed out")}, "network failure talking to the Hugging Face Hub"),
    "server down": ({"upload_folder": http_error(503)},
                    "the Hugging Face Hub kept failing (HTTP 503) after retries; nothing partial was committed"),
    "offline mode": ({"create_repo": OfflineModeIsEnabled("offline")}, "cannot push while offline"),
    "bad request": ({"upload_folder": http_error(400, f"Invalid token {TOKEN} in metadata")},
                    "the Hugging Face Hub refused the push (HTTP 400: Invalid token hf_*** in metadata)"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_hub_failures_are_one_line_without_the_token(cli, run, online, case):
    fail, expected = ERRORS[case]
    online(fail)
    message = one_line_error(cli("push", run, "--repo", "user/m"), 1)
    assert message.startswith(f"wacse: error: {expected}"), message


def test_not_logged_in_fails_before_touching_anything(cli, run, online, monkeypatch):
    api = online()
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    message = one_line_error(cli("push", run, "--repo", "user/m"), 1)
    assert message == ("wacse: error: not logged in to the Hugging Face Hub; "
                       "run 'hf auth login' or set HF_TOKEN to a token with write access")
    assert api.calls == [] and not (run / "README.md").exists()


def test_offline_refuses_to_push_but_allows_a_dry_run(cli, run, online, monkeypatch):
    api = online()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(cli("push", run, "--repo", "user/m"), 1)
    assert message.startswith("wacse: error: cannot push while offline (HF_HUB_OFFLINE is set)")
    assert cli("push", run, "--repo", "user/m", "--dry-run").exit_code == 0 and api.calls == []


# ----------------------------------------------------------------------------- incomplete folders


@pytest.mark.parametrize("remove, expected", [
    (["tokenizer.json", "model.safetensors"], "missing model.safetensors, tokenizer.json"),
    (["modules.json", "1_Pooling"], "missing modules.json, 1_Pooling/config.json"),
    (["wacse.json"], "missing wacse.json"),
])
def test_incomplete_folder_names_what_is_missing(cli, run, online, remove, expected):
    api = online()
    for name in remove:
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    message = one_line_error(cli("push", run, "--repo", "user/m"), 2)
    assert message == f"wacse: error: {run} is not a complete wacse model folder: {expected}; " \
                      "pass the output folder of a finished wacse train run"
    assert api.calls == []


def test_sharded_weights_and_language_embedding_are_checked(run):
    (run / "model.safetensors").rename(run / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (run / "model.safetensors.index.json").write_text(json.dumps(index))
    meta = json.loads((run / "wacse.json").read_text())
    (run / "wacse.json").write_text(json.dumps({**meta, "lang_embedding": True}))
    with pytest.raises(upload.UsageError, match="missing model-00002-of-00002.safetensors, lang_embedding.safetensors"):
        upload.check_model_folder(run)


def test_bad_folder_and_repo_id_are_usage_errors(cli, tmp_path, run):
    assert "no such folder" in one_line_error(cli("push", tmp_path / "nope", "--repo", "user/m", "--dry-run"), 2)
    assert "is not a valid Hub repository id" in one_line_error(cli("push", run, "--repo", "a/b/c", "--dry-run"), 2)
