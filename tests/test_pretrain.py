"""course_lib.pretrain: DDP over 2 processes equals 1 process; resuming continues identically."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from course_lib.data.corpus import make_corpus
from course_lib.pretrain import PretrainArgs, PretrainingData, lr_at, load_checkpoint, pretrain
from course_lib.tokenization import load_tokenizer

# A micro model and a few steps: the point is equality, not learning.
CLI = ["--model", "micro", "--n-docs", "200", "--steps", "4", "--batch-size", "8", "--dropout", "0", "--warmup", "2", "--log-every", "1"]


def _env():
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.pop("COURSE_GRADING_DIR", None)
    return env


def _run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.timeout(400)
def test_two_process_torchrun_equals_one_process(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun is installed with torch, next to the python executable"
    _run([sys.executable, "-m", "course_lib.pretrain", *CLI, "--out-dir", str(tmp_path / "one")], tmp_path)
    out = _run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "course_lib.pretrain", *CLI, "--out-dir", str(tmp_path / "two")],
        tmp_path,
    )
    assert out.stdout.count("tokens/s") == 1  # only rank 0 reports
    one, ckpt_one = load_checkpoint(tmp_path / "one")
    two, ckpt_two = load_checkpoint(tmp_path / "two")
    assert ckpt_one["step"] == ckpt_two["step"] == 4
    assert len(ckpt_two["rng"]) == 2  # both processes' random states were saved
    for (name, p1), (_, p2) in zip(one.named_parameters(), two.named_parameters()):
        torch.testing.assert_close(p1, p2, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
    # and the parameters did move: the test would be empty otherwise
    fresh = load_checkpoint(tmp_path / "one")[0]
    assert fresh.bert.embeddings.word_embeddings.weight.abs().sum() > 0
    losses_one = [h["loss"] for h in ckpt_one["history"]]
    losses_two = [h["loss"] for h in ckpt_two["history"]]
    assert losses_one == pytest.approx(losses_two, rel=1e-4)


class _Crash(Exception):
    pass


def test_resume_continues_identically(tmp_path):
    tokenizer = load_tokenizer()
    data = PretrainingData(make_corpus(200), tokenizer, max_len=48)
    base = dict(model="micro", steps=6, batch_size=8, warmup=2, log_every=1, dropout=0.1)  # dropout on: RNG state matters

    straight = pretrain(PretrainArgs(**base), data, progress=False)

    def crash_after_step_4(record):
        if record["step"] == 4:
            raise _Crash

    run_dir = tmp_path / "run"
    with pytest.raises(_Crash):
        pretrain(PretrainArgs(**base, out_dir=str(run_dir), save_every=3), data, progress=False, on_log=crash_after_step_4)
    assert load_checkpoint(run_dir)[1]["step"] == 3
    resumed = pretrain(PretrainArgs(**base, out_dir=str(run_dir), resume=True), data, progress=False)

    for (name, p1), (_, p2) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p1, p2), f"{name} differs after resuming"
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert (run_dir / "vocab.txt").exists()


def test_batches_are_a_function_of_the_step():
    data = PretrainingData(make_corpus(100), load_tokenizer(), max_len=48)
    a, b, c = data.batch(7, 16), data.batch(7, 16), data.batch(8, 16)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.input_ids, c.input_ids)
    assert a.input_ids.shape[1] <= 48
    assert set(a.nsp_labels.tolist()) <= {0, 1}


def test_the_result_counts_tokens_and_masked_targets():
    data = PretrainingData(make_corpus(100), load_tokenizer(), max_len=48)
    result = pretrain(PretrainArgs(model="micro", steps=3, batch_size=8, warmup=1), data, progress=False)
    batches = [data.batch(step, 8) for step in (1, 2, 3)]
    assert result.tokens_seen == sum(int(b.attention_mask.sum()) for b in batches)
    assert result.targets_seen == sum(int((b.mlm_labels != -100).sum()) for b in batches)
    assert 0 < result.targets_seen < result.tokens_seen


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 1.0, warmup=10, total=100) for s in range(1, 101)]
    assert lrs[9] == 1.0 and lrs[0] == pytest.approx(0.1) and lrs[-1] == 0.0
    assert all(x <= y for x, y in zip(lrs[:10], lrs[1:10])) and all(x >= y for x, y in zip(lrs[9:], lrs[10:]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="model"):
        PretrainArgs(model="gigantic")
    with pytest.raises(ValueError, match="steps"):
        PretrainArgs(steps=0)
