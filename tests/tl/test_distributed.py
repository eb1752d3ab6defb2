"""tl.train under torchrun: two processes (CPU, gloo) train one model in step, and it is saved once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mmcontext as mmc

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import mmcontext as mmc
    mmc.settings.progress = False
    adata = mmc.datasets.pbmc68k_reduced()[:240].copy()
    mmc.pp.prepare(adata, caption_keys={"cell_type": "bulk_labels"})
    kwargs = json.loads(sys.argv[2])
    model = mmc.tl.train(adata, epochs=2, hidden_dim=64, seed=0, output_dir=sys.argv[1], **kwargs)
    weights = sum(float(p.detach().double().sum()) for p in model.omics_encoder.parameters())
    text = sum(float(p.detach().double().sum()) for p in model.text_modules[0].parameters())
    out = {"rank": int(os.environ["RANK"]), "world": int(os.environ["WORLD_SIZE"]), "omics": weights, "text": text,
           "steps": model.mmc_history[-1]["step"], "weight": model.calibration["weight"]}
    print("RESULT " + json.dumps(out), flush=True)
    """
)


def _torchrun(tmp_path, kwargs: dict) -> list[dict]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path / "model"),
        json.dumps(kwargs),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sorted(
        (json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")),
        key=lambda r: r["rank"],
    )


@pytest.mark.parametrize(
    "kwargs", [{}, {"text_trainable": 1, "text_pairs": "ontology"}], ids=["cells-captions", "with-text-pairs"]
)
def test_two_processes_train_one_model(tmp_path, kwargs):
    ranks = _torchrun(tmp_path, kwargs)
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["world"] == 2
    # gradients are averaged across processes: both hold the same weights after every step
    assert ranks[0]["omics"] == pytest.approx(ranks[1]["omics"], rel=1e-6)
    assert ranks[0]["text"] == pytest.approx(ranks[1]["text"], rel=1e-6)
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0 and ranks[0]["weight"] == pytest.approx(ranks[1]["weight"])
    # one process wrote the model; it loads, embeds and carries the calibration
    model = mmc.models.load(tmp_path / "model")
    saved = sum(float(p.detach().double().sum()) for p in model.omics_encoder.parameters())
    assert saved == pytest.approx(ranks[0]["omics"], rel=1e-6)
    assert model.calibration["weight"] == pytest.approx(ranks[0]["weight"])
    emb = model.encode_cells(np.zeros((2, model.input_dim), np.float32))
    assert emb.shape == (2, 384)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind
