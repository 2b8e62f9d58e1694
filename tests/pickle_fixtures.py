"""Writes the pickle reader's fixtures (tests/test_pickle.cpp) into a folder: an
MMSA-shaped file (float32 sequences, int64 lengths, labels,
object arrays of strings, a list of ids), arrays of other dtypes and orders, a NumPy
scalar, a Python-2-style pickle written byte by byte (str payloads, byte-string keys), an
IEMOCAP-shaped file in the LMF reference's layout (byte keys, nested by emotion, NaN and Inf
in COVAREP), a MultiBench-shaped one ([N, 1, 1] labels, front padding, -inf), each of the
three layouts in protocols 2, 4 and 5, and
hostile pickles that name os.system, subprocess.Popen, builtins.eval and a NumPy
subclass. Beside each readable file, expected.npz holds the arrays Python itself reads
from it.

usage: pickle_fixtures.py FOLDER
"""
import os
import pickle
import struct
import sys

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(0)


def split(n):
    return {
        "text": rng.standard_normal((n, 5, 3)).astype(np.float32),
        "audio": rng.standard_normal((n, 7, 2)).astype(np.float32),
        "audio_lengths": rng.integers(0, 8, n).astype(np.int64),
        "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
        "raw_text": np.array(["word %d" % i for i in range(n)], dtype=object),
        "id": ["clip_%d" % i for i in range(n)],
    }


mmsa = {"train": split(4), "valid": split(3), "test": split(2)}
others = {
    "f64": rng.standard_normal((2, 3)),
    "fortran": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
    "bools": np.array([True, False, True]),
    "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
    "unicode": np.array(["ab", "c"]),
    "scalar": np.float32(3.5),
    "nested": {b"happy": {"label": np.array([1, 0], dtype=np.int64)}},
    "small": [1, -2, 300, 70000, -(2 ** 40), 2.5, None, True, "ü"],
}
for protocol in (2, 4, 5):
    with open(os.path.join(out, "mmsa-p%d.pkl" % protocol), "wb") as f:
        pickle.dump(mmsa, f, protocol=protocol)
    with open(os.path.join(out, "others-p%d.pkl" % protocol), "wb") as f:
        pickle.dump(others, f, protocol=protocol)

expected = {}
for name, s in mmsa.items():
    for key in ("text", "audio", "audio_lengths", "regression_labels"):
        expected["%s.%s" % (name, key)] = s[key]
for key in ("f64", "fortran", "i32"):
    expected[key] = np.ascontiguousarray(others[key])
expected["bools"] = others["bools"].astype(np.int64)  # .npz readers take numbers
expected["nested"] = others["nested"][b"happy"]["label"]


def py2_array(values):
    """What Python 2's numpy writes for a float32 array, protocol 2: str payloads."""
    data = values.astype("<f4").tobytes()
    shape = values.shape
    b = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    b += b"K\x00\x85U\x01b\x87R("                        # _reconstruct(ndarray, (0,), 'b')
    b += b"K\x01" + b"K%c" % shape[0] + b"K%c" % shape[1] + b"\x86"  # version, shape
    b += b"cnumpy\ndtype\nU\x02f4K\x00K\x01\x87R"        # dtype('f4', 0, 1)
    b += b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"  # its state
    b += b"\x89" + b"T" + struct.pack("<I", len(data)) + data + b"tb"
    return b


covarep = rng.standard_normal((2, 3)).astype(np.float32)
py2 = b"\x80\x02}(U\x05trainq\x00}U\x07covarep" + py2_array(covarep) + b"su."
with open(os.path.join(out, "py2.pkl"), "wb") as f:
    f.write(py2)
# Python itself reads the hand-made bytes to the same array.
assert np.array_equal(pickle.loads(py2, encoding="bytes")[b"train"][b"covarep"], covarep)
expected["py2"] = covarep


def with_nonfinite(a, every):
    """A copy of `a` with NaN, +Inf and -Inf at every `every`-th value (flat order)."""
    a = a.copy()
    flat = a.reshape(-1)
    for i, v in zip(range(0, flat.size, every), [np.nan, np.inf, -np.inf] * flat.size):
        flat[i] = v
    return a


def lmf_split(n, name, prefix):
    """The LMF reference's split: byte-string keys, COVAREP with NaN and Inf values."""
    s = {
        b"covarep": with_nonfinite(rng.standard_normal((n, 4)).astype(np.float32), 5),
        b"facet": rng.standard_normal((n, 3)).astype(np.float32),
        b"glove": rng.standard_normal((n, 5, 3)).astype(np.float32),
        b"label": rng.integers(0, 2, n).astype(np.int64),
    }
    covarep = s[b"covarep"]
    expected["%s.%s.covarep" % (prefix, name)] = np.nan_to_num(covarep, nan=0, posinf=0, neginf=0)
    expected["%s.%s.covarep_nonfinite" % (prefix, name)] = (~np.isfinite(covarep)).sum(1).astype(np.int64)
    expected["%s.%s.glove" % (prefix, name)] = s[b"glove"]
    expected["%s.%s.label" % (prefix, name)] = s[b"label"]
    return s


# IEMOCAP as the LMF reference keeps it: nested by emotion first, then by split.
iemocap = {emotion: {split: lmf_split(n, split.decode(), "iemocap." + emotion.decode())
                     for split, n in ((b"train", 6), (b"valid", 4), (b"test", 3))}
           for emotion in (b"happy", b"sad")}
for protocol in (2, 4, 5):
    with open(os.path.join(out, "iemocap-p%d.pkl" % protocol), "wb") as f:
        pickle.dump(iemocap, f, protocol=protocol)
# One emotion alone: the LMF reference's layout at the root (b'train', b'valid', b'test').
with open(os.path.join(out, "lmf-happy-p2.pkl"), "wb") as f:
    pickle.dump(iemocap[b"happy"], f, protocol=2)


def multibench_split(n):
    """MultiBench's affect split: [N, 1, 1] labels, front-padded text, -inf in audio."""
    text = rng.standard_normal((n, 6, 3)).astype(np.float32)
    lengths = rng.integers(1, 7, n)
    for i, l in enumerate(lengths):
        text[i, : 6 - l] = 0  # zero padding at the front
    audio = rng.standard_normal((n, 6, 2)).astype(np.float32)
    audio[0, 0, 1] = -np.inf
    return {"vision": rng.standard_normal((n, 6, 2)).astype(np.float32), "audio": audio,
            "text": text, "labels": rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32),
            "id": np.array([["clip", str(i)] for i in range(n)])}


multibench = {"train": multibench_split(5), "valid": multibench_split(3), "test": multibench_split(3)}
for protocol in (2, 4, 5):
    with open(os.path.join(out, "multibench-p%d.pkl" % protocol), "wb") as f:
        pickle.dump(multibench, f, protocol=protocol)
for name, s in multibench.items():
    expected["multibench.%s.text" % name] = s["text"]
    expected["multibench.%s.labels" % name] = s["labels"].reshape(-1, 1)

np.savez(os.path.join(out, "expected.npz"), **expected)

hostile = {
    "os-system.pkl": b"cos\nsystem\n(S'touch " + out.encode() + b"/MARKER'\ntR.",
    "subprocess.pkl": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\nsubprocess\x8c\x05Popen\x93"
                      b"\x8c\x05touch\x85R.",
    "eval.pkl": b"\x80\x02c__builtin__\neval\nX\x05\x00\x00\x001 + 1\x85R.",
    "builtins-eval.pkl": b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93X\x05\x00\x00\x001 + 1\x85R.",
    "masked.pkl": pickle.dumps(np.ma.masked_array([1.0, 2.0], mask=[0, 1]), protocol=2),
    "out-of-band.pkl": b"\x80\x05\x97.",
    "truncated.pkl": pickle.dumps(mmsa["test"], protocol=4)[:-40],
}
for name, data in hostile.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
