"""The toy training script's CLIP phase, at smoke-test size."""

import torch

from dragpd.toy.models import build_models
from dragpd.toy.train import render_dataset, train_clip


def test_clip_training_runs_and_reports_retrieval():
    images, captions = render_dataset(520)  # the last 512 are held out for retrieval
    models = build_models(seed=0)
    cfg = {"clip_steps": 2, "clip_batch": 8, "clip_lr": 1e-3}
    before = {k: v.clone() for k, v in models.clip.state_dict().items()}
    meta = train_clip(models, images, captions, cfg, torch.Generator().manual_seed(3))
    assert set(meta) == {"clip_retrieval", "clip_seconds"} and 0 <= meta["clip_retrieval"] <= 1
    changed = [k for k, v in models.clip.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and not models.clip.training
