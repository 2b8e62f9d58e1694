"""Python side of the interop test: reads an mmfusion checkpoint and a data file with
plain PyTorch, recomputes the LMF forward pass from the state dict (an implementation
independent of the C++ one), prints the MSE it finds, and writes a data file of its own.

usage: python_interop.py CHECKPOINT DATA_FILE OUTPUT_DATA_FILE
"""
import json
import sys

import torch


def lmf_forward(sd, config, inputs):
    names = [m["name"] for m in config["data"]["modalities"]]
    product = None
    for name, x in zip(names, inputs):
        if f"scaling.mean_{name}" in sd:                                 # data.standardize
            x = (x - sd[f"scaling.mean_{name}"]) / sd[f"scaling.scale_{name}"]
        h = x
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
    names = [mod["name"] for mod in config["data"]["modalities"]]
    assert sorted(data) == sorted(names + ["target"]), sorted(data)
    inputs = [data[n].double() for n in names]
    y = lmf_forward(sd, config, inputs)[:, 0]
    mse = torch.mean((y - data["target"].double()) ** 2).item()
    print(json.dumps({"mse": mse, "epoch": meta["progress"]["epoch"]}))

    gen = torch.Generator().manual_seed(0)
    own = {mod["name"]: torch.randn(10, mod["dim"], generator=gen) for mod in config["data"]["modalities"]}
    torch.save(own, output)


if __name__ == "__main__":
    main()
