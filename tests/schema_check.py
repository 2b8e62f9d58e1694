#!/usr/bin/env python3
"""The config JSON Schema against Python's jsonschema (Debian's python3-jsonschema),
independently of mmfusion's own parser and of the test suite's validator:
  - `mmfusion schema` is the committed configs/mmfusion.schema.json, a valid 2020-12 schema;
  - every config in configs/, and its resolved form (`mmfusion validate`), validates;
  - resolved configs of many kinds validate;
  - configs mmfusion refuses for one key alone are refused by the schema too.
  usage: schema_check.py SOURCE_DIR MMFUSION_BINARY"""
import json
import pathlib
import subprocess
import sys

try:
    from jsonschema import Draft202012Validator
except ImportError:  # exit 77: ctest reports the test as skipped
    print("schema_check: skipped, no jsonschema module (python3-jsonschema; scripts/setup.sh installs it)")
    sys.exit(77)

root, binary = pathlib.Path(sys.argv[1]), sys.argv[2]
failures = []


def run(*args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


shipped = (root / "configs" / "mmfusion.schema.json").read_text()
if run("schema").stdout != shipped:
    failures.append("configs/mmfusion.schema.json differs from `mmfusion schema` (run scripts/generate-config-docs.py)")
schema = json.loads(shipped)
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)


def errors(doc):
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc)]


configs = sorted(p for p in [*(root / "configs").glob("*.json"), *(root / "configs" / "benchmarks").glob("*.json")]
                 if p.name != "mmfusion.schema.json")
variants = [[], ["task=classification", "num_classes=3"], ["data.source=file", "data.path=x.pt"],
            ["data.synthetic.weights=null", 'data.synthetic.terms=[{"modalities": ["visual"]}]'],
            ["model.type=intense"], ["mkl.interactions=all", "mkl.kernels.text.type=polynomial"],
            ["model.encoders={\"text\": [8]}", "train.fused_step=false"]]
for path in configs:
    for e in errors(json.loads(path.read_text())):
        failures.append(f"{path.name}: {e}")
    for overrides in variants if path.name == "default.json" else [[]]:
        args = ["validate", "--config", str(path)] + [a for o in overrides for a in ("--set", o)]
        result = run(*args)
        if result.returncode != 0:
            failures.append(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
            continue
        for e in errors(json.loads(result.stdout)):
            failures.append(f"{path.name} resolved with {overrides}: {e}")

# One key wrong at a time: mmfusion refuses each (exit 2), and so does the schema.
bad = ["model.rank=0", "model.rank=2.5", "model.rnak=4", "trian.epochs=3", "model.dropout=1.0",
       "model.type=rnn", "train.lr=0", "train.optimizer=rmsprop", "train.batch_size=true", "train.momentum=1",
       "train.handwritten_step=1", "device=gpu", "threads=-1", "threads=1025", "seed=-5", "name=a/b", "name=..",
       "data.source=csv", "data.synthetic.generator=3", "data.synthetic.weights.cubic=1",
       'data.modalities=[{"name": "a b", "dim": 3}, {"name": "c", "dim": 1}]',
       'model.encoders={"text": [8, 0]}', "model.encoder_hidden=16", "model=[]", "mkl.solver=foo",
       "mkl.interactions=some", "mkl.kernels.default.degree=11", "mkl.kernels.default.typ=rbf",
       "distributed.timeout_s=0", "model.intense.interactions=[[\"visual\"]]", "$schema=3"]
for assignment in bad:
    result = run("validate", "--config", str(root / "configs" / "default.json"), "--set", assignment)
    if result.returncode != 2:
        failures.append(f"--set {assignment}: mmfusion exit {result.returncode}, expected 2")
    doc = json.loads((root / "configs" / "default.json").read_text())
    key, value = assignment.split("=", 1)
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass
    node = doc
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    if not errors(doc):
        failures.append(f"--set {assignment}: the schema accepts it")

for f in failures:
    print("FAIL", f)
print(f"schema_check: {len(configs)} configs, {len(variants)} variants, {len(bad)} bad configs; "
      f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
