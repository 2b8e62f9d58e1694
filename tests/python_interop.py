"""Python side of the interop test: reads an mmfusion checkpoint and a data file with
plain PyTorch, recomputes the LMF forward pass from the state dict (an implementation
independent of the C++ one; an LSTM encoder's recurrence written out by hand), prints the MSE it finds, and writes a data file of its own.

usage: python_interop.py CHECKPOINT DATA_FILE OUTPUT_DATA_FILE
"""
import json
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


def main():
    checkpoint, data_file, output = sys.argv[1:4]
    m = torch.jit.load(checkpoint)
    meta = json.loads(m.meta)
    assert meta["format"] == "mmfusion-checkpoint", meta["format"]
    config = meta["config"]
    sd = {k: v.double() if v.is_floating_point() else v for k, v in m.state_dict().items()}
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
    y = lmf_forward(sd, config, inputs, lengths)[:, 0]
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
