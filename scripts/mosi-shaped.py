"""Writes a CMU-MOSI-shaped unaligned MMSA pickle: the layout, shapes, dtypes and split
sizes of MMSA's MOSI/Processed/unaligned_50.pkl (1284 / 229 / 686 rows, text
[N, 50, 768], audio [N, 500, 5] and vision [N, 375, 20] with their lengths, text_bert,
regression labels in [-3, 3], and the string entries), filled with random values and a
label that the vision and text features decide, so that a model can learn it. For the
end-to-end preset test and the reading benchmark; no real data is in it.

usage: /usr/bin/python3 scripts/mosi-shaped.py FILE [ROWS_SCALE] [--nonfinite]
(ROWS_SCALE, default 1, multiplies the split sizes; --nonfinite puts NaN and Inf values
in the training split's audio and vision, and writes their count per row to
FILE.nonfinite.npz.)
"""
import pickle
import sys

import numpy as np

args = [a for a in sys.argv[1:] if a != "--nonfinite"]
nonfinite = "--nonfinite" in sys.argv
path = args[0]
scale = float(args[1]) if len(args) > 1 else 1.0
rng = np.random.default_rng(0)
w_text = rng.standard_normal(768).astype(np.float32) / np.sqrt(768)
w_vision = rng.standard_normal(20).astype(np.float32) / np.sqrt(20)


def split(n):
    audio_len = rng.integers(20, 501, n)
    vision_len = rng.integers(15, 376, n)
    text = rng.standard_normal((n, 50, 768), dtype=np.float32)
    audio = rng.standard_normal((n, 500, 5), dtype=np.float32)
    vision = rng.standard_normal((n, 375, 20), dtype=np.float32) * 0.5
    for i in range(n):
        audio[i, audio_len[i]:] = 0
        vision[i, vision_len[i]:] = 0
    shift = rng.standard_normal(n).astype(np.float32)
    vision += (shift[:, None, None] * w_vision[None, None, :]).astype(np.float32)
    vision_mean = vision.sum(1) / 375  # MMSA's average over every step
    score = 2.0 * (text.mean(1) @ w_text) * np.sqrt(50) + vision_mean @ w_vision * 375 / vision_len
    labels = np.clip(np.round(score * 3) / 3, -3, 3).astype(np.float32)
    return {
        "raw_text": np.array(["clip %d" % i for i in range(n)], dtype=object),
        "audio": audio, "vision": vision, "id": np.array(["v%d_%d" % (i, i % 7) for i in range(n)], dtype=object),
        "text": text, "text_bert": rng.integers(0, 2, (n, 3, 50)).astype(np.float32),
        "audio_lengths": audio_len.astype(np.int64).tolist(),
        "vision_lengths": vision_len.astype(np.int64).tolist(),
        "annotations": np.array(["Neutral"] * n, dtype=object),
        "classification_labels": (labels > 0).astype(np.float32),
        "regression_labels": labels,
    }


sizes = {"train": 1284, "valid": 229, "test": 686}
data = {name: split(max(1, int(round(n * scale)))) for name, n in sizes.items()}
if nonfinite:
    train = data["train"]
    n = len(train["regression_labels"])
    audio, vision = train["audio"], train["vision"]
    for i in range(0, n, 7):  # within each row's valid steps (lengths are >= 20 and >= 15)
        audio[i, i % 20, i % 5] = np.nan
        vision[i, i % 15, :3] = [np.inf, -np.inf, np.nan]
    np.savez(path + ".nonfinite.npz",
             audio=(~np.isfinite(audio)).reshape(n, -1).sum(1).astype(np.int64),
             vision=(~np.isfinite(vision)).reshape(n, -1).sum(1).astype(np.int64))
with open(path, "wb") as f:
    pickle.dump(data, f, protocol=4)
