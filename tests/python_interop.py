"""Python side of the interop test: reads an mmfusion checkpoint and a data file with
plain PyTorch, recomputes the LMF or MulT forward pass from the state dict (an
implementation independent of the C++ one; an LSTM encoder's recurrence and MulT's
attention written out by hand), prints the MSE it finds, and writes a data file of its own.

usage: python_interop.py CHECKPOINT DATA_FILE OUTPUT_DATA_FILE
"""
import json
import math
import sys

import torch


def lstm_last(sd, prefix, x, lengths):
    """A one-layer LSTM written out by hand (gates i, f, g, o as LibTorch orders them), run
    over each row's own valid steps: its final hidden state."""
    w_ih, w_hh = sd[prefix + "weight_ih_l0"], sd[prefix + "weight_hh_l0"]
    b = sd[prefix + "bias_ih_l0"] + sd[prefix + "bias_hh_l0"]
    hidden = w_hh.shape[1]
    out = torch.zeros(x.shape[0], hidden, dtype=x.dtype)
    for row in range(x.shape[0]):
        h = torch.zeros(hidden, dtype=x.dtype)
        c = torch.zeros(hidden, dtype=x.dtype)
        for t in range(int(lengths[row])):
            i, f, g, o = (w_ih @ x[row, t] + w_hh @ h + b).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        out[row] = h
    return out


def lmf_forward(sd, config, inputs, lengths=None):
    names = [m["name"] for m in config["data"]["modalities"]]
    product = None
    for name, x in zip(names, inputs):
        if f"scaling.mean_{name}" in sd:                                 # data.standardize
            x = (x - sd[f"scaling.mean_{name}"]) / sd[f"scaling.scale_{name}"]
        h = x
        rnn = f"model.encoders.{name}.rnn."
        if rnn + "weight_ih_l0" in sd:                                   # an lstm encoder
            h = lstm_last(sd, rnn, x, lengths[name])
            if f"model.encoders.{name}.out.weight" in sd:
                h = h @ sd[f"model.encoders.{name}.out.weight"].T + sd[f"model.encoders.{name}.out.bias"]
        i = 0
        while f"model.encoders.{name}.fc{i}.weight" in sd:
            w, b = sd[f"model.encoders.{name}.fc{i}.weight"], sd[f"model.encoders.{name}.fc{i}.bias"]
            h = torch.relu(h @ w.T + b)
            i += 1
        z = torch.cat([torch.ones(h.shape[0], 1), h], dim=1)           # [1; h]
        f = torch.einsum("bi,rio->rbo", z, sd[f"model.fusion.factor_{name}"])
        product = f if product is None else product * f
    w = sd["model.fusion.rank_weights"]                                   # (1, rank)
    y = torch.einsum("r,rbo->bo", w[0], product) + sd["model.fusion.bias"]
    if "model.head.weight" in sd:
        y = y @ sd["model.head.weight"].T + sd["model.head.bias"]
    if "scaling.target_mean" in sd:                                      # data.standardize_target
        y = y * sd["scaling.target_scale"] + sd["scaling.target_mean"]
    return y


def scaled(sd, name, x):
    if f"scaling.mean_{name}" in sd:                                     # data.standardize
        x = (x - sd[f"scaling.mean_{name}"]) / sd[f"scaling.scale_{name}"]
    return x


def sinusoid(steps, width):
    t = torch.arange(steps, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(0, width, 2, dtype=torch.float64)
    angle = t * torch.exp(i * (-math.log(10000.0) / width))
    pe = torch.zeros(steps, width, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : width // 2])
    return pe


def layer_norm(sd, p, x):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * sd[p + "weight"] + sd[p + "bias"]


def linear(sd, p, x):
    return x @ sd[p + "weight"].T + sd[p + "bias"]


def attention(sd, p, q, k, keep, heads):
    """Multi-head attention by hand: q [B, Tq, W], k [B, Tk, W] (keys and values), keep
    [B, Tk] (False: a key no query may see)."""
    W = q.shape[-1]
    w, b = sd[p + "in_proj_weight"], sd[p + "in_proj_bias"]
    Q, K, V = (x @ w[j * W:(j + 1) * W].T + b[j * W:(j + 1) * W] for j, x in enumerate((q, k, k)))
    B, Tq, Tk, hd = Q.shape[0], Q.shape[1], K.shape[1], W // heads
    Q = Q.view(B, Tq, heads, hd).transpose(1, 2) / math.sqrt(hd)
    K = K.view(B, Tk, heads, hd).transpose(1, 2)
    V = V.view(B, Tk, heads, hd).transpose(1, 2)
    scores = (Q @ K.transpose(-1, -2)).masked_fill(~keep[:, None, None, :], float("-inf"))
    a = (torch.softmax(scores, -1) @ V).transpose(1, 2).reshape(B, Tq, W)
    return linear(sd, p + "out_proj.", a)


def stack(sd, p, x, kv, keep, heads):
    """A MulT transformer: inputs scaled by sqrt(W) plus positions; pre-norm layers with one
    LayerNorm for queries, keys and values; a final LayerNorm."""
    W = x.shape[-1]
    def embed(t):
        return t * math.sqrt(W) + sinusoid(t.shape[1], W)
    h = embed(x)
    src = embed(kv) if kv is not None else None
    i = 0
    while f"{p}layers.{i}.norm0.weight" in sd:
        layer = f"{p}layers.{i}."
        q = layer_norm(sd, layer + "norm0.", h)
        k = layer_norm(sd, layer + "norm0.", src) if src is not None else q
        h = h + attention(sd, layer + "attention.", q, k, keep, heads)
        f = torch.relu(linear(sd, layer + "fc1.", layer_norm(sd, layer + "norm1.", h)))
        h = h + linear(sd, layer + "fc2.", f)
        i += 1
    return layer_norm(sd, p + "norm.", h)


def mult_forward(sd, config, inputs, lengths):
    mods = config["data"]["modalities"]
    heads = config["model"]["mult"]["heads"]
    h, keep, last = [], [], []
    for mod, x in zip(mods, inputs):
        name = mod["name"]
        x = scaled(sd, name, x)
        if mod.get("sequence"):
            n = lengths[name]
            x = x * (torch.arange(x.shape[1])[None, :] < n[:, None]).unsqueeze(2)  # zero padding
        else:
            x, n = x.unsqueeze(1), torch.ones(x.shape[0], dtype=torch.int64)
        w = sd[f"model.project.{name}.weight"]                             # (d, D, k)
        k = w.shape[2]
        y = torch.nn.functional.conv1d(
            torch.nn.functional.pad(x.transpose(1, 2), ((k - 1) // 2, k - 1 - (k - 1) // 2)), w)
        h.append(y.transpose(1, 2))                                        # [B, T, d]
        T = y.shape[2]
        n = n.clamp(max=T)
        keep.append(torch.arange(T)[None, :] < n.clamp(min=1)[:, None])
        last.append(n.clamp(min=1) - 1)
    pooled = []
    for t, target in enumerate(mods):
        # one modality (model.mult.unimodal): its stack is self-attention
        parts = [stack(sd, f"model.cross.{target['name']}_from_{source['name']}.", h[t],
                       h[s] if s != t else None, keep[s], heads)
                 for s, source in enumerate(mods) if s != t or len(mods) == 1]
        c = torch.cat(parts, 2)
        if f"model.memory.{target['name']}.norm.weight" in sd:
            c = stack(sd, f"model.memory.{target['name']}.", c, None, keep[t], heads)
        pooled.append(c[torch.arange(c.shape[0]), last[t]])
    z = torch.cat(pooled, 1)
    y = linear(sd, "model.out.", z + linear(sd, "model.proj2.", torch.relu(linear(sd, "model.proj1.", z))))
    if "scaling.target_mean" in sd:                                      # data.standardize_target
        y = y * sd["scaling.target_scale"] + sd["scaling.target_mean"]
    return y


def main():
    checkpoint, data_file, output = sys.argv[1:4]
    m = torch.jit.load(checkpoint)
    meta = json.loads(m.meta)
    assert meta["format"] == "mmfusion-checkpoint", meta["format"]
    config = meta["config"]
    sd = {k: v.double() if v.is_floating_point() else v for k, v in m.state_dict().items()}
    if config["model"]["type"] == "lmf":
        rank, fused = config["model"]["rank"], config["model"]["fused_dim"]
        hidden = config["model"]["encoder_hidden"][-1]
        assert tuple(sd["model.fusion.factor_visual"].shape) == (rank, hidden + 1, fused)

    # weights_only=True is torch.load's default from PyTorch 2.6: the file must pass it.
    data = torch.load(data_file, weights_only=True)
    modalities = config["data"]["modalities"]
    names = [mod["name"] for mod in modalities]
    sequences = [mod["name"] for mod in modalities if mod.get("sequence")]
    assert sorted(data) == sorted(names + [n + "_lengths" for n in sequences] + ["target"]), sorted(data)
    inputs = [data[n].double() for n in names]
    lengths = {n: data[n + "_lengths"] for n in sequences}
    forward = mult_forward if config["model"]["type"] == "mult" else lmf_forward
    y = forward(sd, config, inputs, lengths)[:, 0]
    mse = torch.mean((y - data["target"].double()) ** 2).item()
    print(json.dumps({"mse": mse, "epoch": meta["progress"]["epoch"]}))

    gen = torch.Generator().manual_seed(0)
    own = {}
    for mod in modalities:
        if mod.get("sequence"):
            own[mod["name"]] = torch.randn(10, mod["max_len"], mod["dim"], generator=gen)
            own[mod["name"] + "_lengths"] = torch.randint(0, mod["max_len"] + 1, (10,), generator=gen)
        else:
            own[mod["name"]] = torch.randn(10, mod["dim"], generator=gen)
    torch.save(own, output)


if __name__ == "__main__":
    main()
