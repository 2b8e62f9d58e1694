#!/usr/bin/python3
"""PyTorch/Python reference of mmfusion's LMF and TFN, for the performance comparison.

Written the way a PyTorch user writes these models (after the LMF reference code,
Justin1904/Low-rank-Multimodal-Fusion, and the usual TFN port; sequence encoders as its
text subnet, a packed LSTM over the valid steps): the same architecture,
initialisation scheme, optimizer, loss, batch handling, thread count and timing method
as `mmfusion bench`. It reads a *resolved* config (`mmfusion validate --config FILE`).

On CUDA it runs in two forms (--mode):
  eager    the model as written, the default Adam; the loss stays on the device (summed,
           read once at the end), as mmfusion's CUDA-graph step keeps it.
  compile  the forward and loss through torch.compile(mode="reduce-overhead") (Inductor
           kernels replayed as CUDA graphs, the backward too), and Adam(fused=True): the
           fastest training step PyTorch offers without hand-written kernels. Compiled
           once per batch size (dynamic=False); evaluation is not timed in this form.
On the CPU it reads the loss back every step, as mmfusion's CPU trainer does.

usage: reference.py --config RESOLVED.json [--batch-sizes 32,256,2048] [--steps N]
                    [--warmup N] [--repeats N] [--device cpu|cuda] [--mode eager|compile]
                    prints one JSON object
"""
import argparse
import math
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def encoder_for(model_cfg, mod):
    """model.encoders.<name> as an object: the list shorthand is an mlp; a sequence without
    an entry is the masked mean of encoder_hidden's MLP (as in mmfusion)."""
    e = model_cfg["encoders"].get(mod["name"])
    if e is None:
        return {"type": "mean" if mod.get("sequence") else "mlp", "hidden": model_cfg["encoder_hidden"]}
    if isinstance(e, list):
        return {"type": "mlp", "hidden": e}
    return e


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """An optional input BatchNorm, then (Linear -> activation -> Dropout) per hidden size,
    as in mmfusion; a sequence is pooled first (masked mean) for type mean."""

    def __init__(self, in_dim, e, dropout, activation="relu"):
        super().__init__()
        layers, d = [nn.BatchNorm1d(in_dim)] if e.get("batch_norm") else [], in_dim
        for h in e.get("hidden", []):
            layers += [nn.Linear(d, h), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            d = h
        self.net = nn.Sequential(*layers)
        self.pool = e["type"] == "mean"
        self.out_dim = d

    def forward(self, x, lengths=None):
        if self.pool:
            mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
            x = (x * mask[:, :, None]).sum(1) / lengths.clamp(min=1)[:, None].to(x.dtype)
        return self.net(x)


class Recurrent(nn.Module):
    """The LMF reference code's text subnet: an LSTM (or GRU) over the packed valid steps,
    its final hidden state, dropout, and a Linear layer."""

    def __init__(self, in_dim, e, dropout):
        super().__init__()
        hidden, layers, bi = e.get("hidden", 64), e.get("layers", 1), e.get("bidirectional", False)
        rnn = nn.LSTM if e["type"] == "lstm" else nn.GRU
        drop = e.get("dropout", dropout)
        self.rnn = rnn(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bi,
                       dropout=drop if layers > 1 else 0.0)
        self.dirs = 2 if bi else 1
        self.drop = nn.Dropout(drop)
        width = hidden * self.dirs
        self.out = nn.Linear(width, e["out"]) if e.get("out", 0) > 0 else None
        self.out_dim = e["out"] if self.out is not None else width

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state
        h = torch.cat(list(h[-self.dirs:]), dim=1)
        h = self.drop(h)
        return self.out(h) if self.out is not None else h


def Encoder(mod, mc):
    e = encoder_for(mc, mod)
    if e["type"] in ("lstm", "gru"):
        return Recurrent(mod["dim"], e, mc["dropout"])
    if e["type"] not in ("mlp", "mean"):
        sys.exit(f"reference.py: encoder type {e['type']} is not implemented here")
    return MLP(mod["dim"], e, mc["dropout"], mc.get("activation", "relu"))


def encode(enc, x):
    """x: a tensor, or (steps, lengths) for a sequence."""
    return enc(*x) if isinstance(x, tuple) else enc(x)


class LMF(nn.Module):
    def __init__(self, mods, mc, out_dim):
        super().__init__()
        self.encoders = nn.ModuleList(Encoder(m, mc) for m in mods)
        r, o = mc["rank"], mc["fused_dim"]
        self.factors = nn.ParameterList(nn.Parameter(torch.empty(r, e.out_dim + 1, o)) for e in self.encoders)
        self.rank_weights = nn.Parameter(torch.empty(1, r))
        self.bias = nn.Parameter(torch.zeros(1, o))
        for f in self.factors:
            nn.init.xavier_normal_(f)
        nn.init.xavier_normal_(self.rank_weights)
        self.head = nn.Linear(o, out_dim) if o != out_dim else None

    def forward(self, xs):
        product = None
        for enc, factor, x in zip(self.encoders, self.factors, xs):
            h = encode(enc, x)
            z = torch.cat([torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device), h], dim=1)
            f = torch.matmul(z, factor)                      # (rank, B, out)
            product = f if product is None else product * f
        y = torch.matmul(self.rank_weights, product.permute(1, 0, 2)).squeeze(1) + self.bias
        return self.head(y) if self.head is not None else y


class TFN(nn.Module):
    def __init__(self, mods, mc, out_dim):
        super().__init__()
        self.encoders = nn.ModuleList(Encoder(m, mc) for m in mods)
        size = 1
        for e in self.encoders:
            size *= e.out_dim + 1
        layers, d = [nn.Dropout(mc["dropout"])], size
        for h in mc["post_hidden"]:
            layers += [nn.Linear(d, h), ACTIVATIONS[mc.get("activation", "relu")](), nn.Dropout(mc["dropout"])]
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.post = nn.Sequential(*layers)

    def forward(self, xs):
        z = None
        for enc, x in zip(self.encoders, xs):
            h = encode(enc, x)
            hm = torch.cat([torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device), h], dim=1)
            z = hm if z is None else torch.bmm(z.unsqueeze(2), hm.unsqueeze(1)).view(h.shape[0], -1)
        return self.post(z)


def sinusoid(steps, width, device):
    t = torch.arange(steps, dtype=torch.float32, device=device).unsqueeze(1)
    i = torch.arange(0, width, 2, dtype=torch.float32, device=device)
    angle = t * torch.exp(i * (-math.log(10000.0) / width))
    pe = torch.zeros(steps, width, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : width // 2])
    return pe


class MultLayer(nn.Module):
    """Pre-LN: attention (one LayerNorm for queries, keys and values), ReLU feed-forward."""
    def __init__(self, width, heads, attention_dropout, d):
        super().__init__()
        self.norm0, self.norm1 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, dropout=attention_dropout)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.relu_dropout, self.residual_dropout = d["relu"], d["residual"]

    def forward(self, x, kv, padding):
        q = self.norm0(x)
        k = self.norm0(kv) if kv is not None else q
        a, _ = self.attention(q, k, k, key_padding_mask=padding, need_weights=False)
        h = x + F.dropout(a, self.residual_dropout, self.training)
        f = F.dropout(torch.relu(self.fc1(self.norm1(h))), self.relu_dropout, self.training)
        return h + F.dropout(self.fc2(f), self.residual_dropout, self.training)


class MultStack(nn.Module):
    def __init__(self, width, heads, layers, attention_dropout, d):
        super().__init__()
        self.layers = nn.ModuleList(MultLayer(width, heads, attention_dropout, d) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.width, self.embedding_dropout = width, d["embedding"]

    def forward(self, x, kv, padding):
        def embed(t):
            e = t * math.sqrt(self.width) + sinusoid(t.shape[0], self.width, t.device).unsqueeze(1)
            return F.dropout(e, self.embedding_dropout, self.training)
        h, src = embed(x), (embed(kv) if kv is not None else None)
        for layer in self.layers:
            h = layer(h, src, padding)
        return self.norm(h)


class MulT(nn.Module):
    """The same MulT as mmfusion's (docs/mult.md), eager, on nn.MultiheadAttention with
    key-padding masks."""
    def __init__(self, mods, mc, out_dim):
        super().__init__()
        c, d = mc["mult"], mc["mult"]["dropout"]
        self.mods, self.c = mods, c
        w, M = c["width"], len(mods)
        self.project = nn.ModuleList(nn.Conv1d(m["dim"], w, c["kernel"][m["name"]], bias=False) for m in mods)
        self.cross = nn.ModuleDict({f"{t['name']}_from_{s['name']}": MultStack(w, c["heads"], c["layers"],
                                                                              d["attention"][s["name"]], d)
                                    for t in mods for s in mods if s is not t})
        self.memory = nn.ModuleDict({t["name"]: MultStack((M - 1) * w, c["heads"], c["memory_layers"],
                                                          d["attention"][t["name"]], d)
                                     for t in mods}) if c["memory_layers"] > 0 else None
        D = M * (M - 1) * w
        self.proj1, self.proj2, self.out = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, out_dim)

    def forward(self, xs):
        d = self.c["dropout"]
        h, pad, last = [], [], []
        for m, conv, x in zip(self.mods, self.project, xs):
            steps, lengths = x if isinstance(x, tuple) else (x.unsqueeze(1), torch.ones(x.shape[0], dtype=torch.int64, device=x.device))
            T = steps.shape[1]
            valid = torch.arange(T, device=steps.device)[None, :] < lengths[:, None]
            steps = F.dropout(steps * valid.unsqueeze(2), d["input"][m["name"]], self.training)
            k = conv.kernel_size[0]
            y = conv(F.pad(steps.transpose(1, 2), ((k - 1) // 2, k - 1 - (k - 1) // 2)))
            h.append(y.permute(2, 0, 1))                               # [T, B, w]
            pad.append(~(torch.arange(T, device=steps.device)[None, :] < lengths.clamp(min=1)[:, None]))
            last.append(lengths.clamp(min=1) - 1)
        pooled = []
        for t, target in enumerate(self.mods):
            c = torch.cat([self.cross[f"{target['name']}_from_{s['name']}"](h[t], h[j], pad[j])
                           for j, s in enumerate(self.mods) if j != t], 2)
            if self.memory is not None:
                c = self.memory[target["name"]](c, None, pad[t])
            pooled.append(c[last[t], torch.arange(c.shape[1], device=c.device)])
        z = torch.cat(pooled, 1)
        y = F.dropout(torch.relu(self.proj1(z)), d["output"], self.training)
        return self.out(self.proj2(y) + z)


def make_optimizer(model, tc, fused=False):
    extra = {"fused": True} if fused else {}
    params = model.parameters()
    if tc.get("factor_lr", 0) > 0 and hasattr(model, "factors"):  # the LMF code's two groups
        factors = {id(p) for p in model.factors}
        params = [{"params": [p for p in model.parameters() if id(p) not in factors]},
                  {"params": list(model.factors), "lr": tc["factor_lr"]}]
    if tc["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=tc["lr"], weight_decay=tc["weight_decay"], **extra)
    if tc["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=tc["lr"], weight_decay=tc["weight_decay"], **extra)
    return torch.optim.SGD(params, lr=tc["lr"], momentum=tc["momentum"], weight_decay=tc["weight_decay"])


def loss_fn(tc):
    return {"mse": F.mse_loss, "l1": F.l1_loss, "cross_entropy": F.cross_entropy,
            "huber": lambda p, y: F.huber_loss(p, y, delta=tc["huber_delta"])}[tc["loss"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch-sizes", default="32,256,2048")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the config's; auto picks cuda if present)")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    device = a.device or cfg.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    cuda = device.type == "cuda"
    if a.mode == "compile" and not cuda:
        ap.error("--mode compile is for CUDA (reduce-overhead means CUDA graphs)")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg["train"].get("tf32", False))
        torch.backends.cudnn.allow_tf32 = bool(cfg["train"].get("tf32", False))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    threads = cfg["threads"] or os.cpu_count()
    torch.set_num_threads(threads)
    mods, mc, tc = cfg["data"]["modalities"], cfg["model"], cfg["train"]
    classification = cfg.get("task") == "classification"
    out = mc["output_dim"] or (cfg["num_classes"] if classification else 1)
    cls = {"lmf": LMF, "tfn": TFN, "mult": MulT}[mc["type"]]
    lossf = loss_fn(tc)
    results = []
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        torch.manual_seed(cfg["seed"])
        model = cls(mods, mc, out).to(device)
        compiled = a.mode == "compile"
        opt = make_optimizer(model, tc, fused=compiled)
        # A sequence's every step valid (its max_len steps, else 50), as mmfusion's bench.
        xs = [(torch.randn(batch, m.get("max_len") or 50, m["dim"], device=device),
               torch.full((batch,), m.get("max_len") or 50, dtype=torch.int64, device=device))
              if m.get("sequence") else torch.randn(batch, m["dim"], device=device) for m in mods]
        y = (torch.randint(out, (batch,)) if classification else torch.randn(batch, out)).to(device)
        model.train()
        forward_loss = lambda xs, y: lossf(model(xs), y)
        if compiled:
            torch._dynamo.reset()
            forward_loss = torch.compile(forward_loss, mode="reduce-overhead", dynamic=False)
        total = torch.zeros((), device=device)

        def step():  # no gradient clipping, as mmfusion's bench step has none
            loss = forward_loss(xs, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cuda:
                total.add_(loss.detach())
            else:
                loss.item()

        t_compile = time.perf_counter()
        for _ in range(a.warmup):
            step()
        sync()
        t_compile = time.perf_counter() - t_compile
        train = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step()
            sync()
            train.append(batch * a.steps / (time.perf_counter() - t0))
        total.item()
        evals = []
        if not compiled:
            model.eval()
            with torch.inference_mode():
                for _ in range(a.warmup):
                    model(xs)
                sync()
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    for _ in range(a.steps):
                        model(xs)
                    sync()
                    evals.append(batch * a.steps / (time.perf_counter() - t0))
        print(f"reference {a.mode} on {device}, batch {batch}: {statistics.median(train):.0f} train samples/s "
              f"(warm-up {t_compile:.1f} s)", file=sys.stderr, flush=True)
        results.append({"batch_size": batch, "warmup_seconds": t_compile,
                        "train": {"samples_per_s": statistics.median(train), "samples_per_s_min": min(train),
                                  "samples_per_s_max": max(train)},
                        "eval": {"samples_per_s": statistics.median(evals) if evals else None}})
    print(json.dumps({"implementation": "pytorch-python", "mode": a.mode, "device": str(device),
                      "torch": torch.__version__, "model": mc["type"],
                      "threads": threads, "parameters": sum(p.numel() for p in model.parameters()),
                      "results": results}))


if __name__ == "__main__":
    main()
