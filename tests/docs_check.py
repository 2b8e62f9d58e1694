#!/usr/bin/env python3
"""Checks that the docs say what the program does.

  docs_check.py static SOURCE_DIR            relative links resolve inside the repository;
                                             every Markdown table row has its header's columns
  docs_check.py commands SOURCE_DIR BINARY   every command the docs show runs, in a fresh
                                             temporary folder, and exits with status 0

A command is a line of a ```sh block, or an inline code span, that starts with
`mmfusion`, `./build/mmfusion`, `bench/`, `python3 -m torch.distributed.run` or a
`VAR=value` prefix of one of those. Commands with placeholders (an all-capitals word such
as FILE, CKPT, RUN/...; `<...>`; `[...]`) are usage patterns, not commands, and are not
run; neither are commands that set up the machine (scripts/setup.sh, which the test
suite's own build has run), reach other hosts, or need a GPU (scripts/gpu*, device=cuda), nor the
six-minute report (scripts/experiments.sh, run by hand for docs/experiments.md). A sweep
or an attribution is run with --dry-run (every combination built and validated, none trained), and
bench/compare.sh with STEPS, WARMUP, REPEATS and ROUNDS of 1 (the comparison runs, its figures
are not the point), to keep the suite short. Prints one line per check and closes with 'N passed, N failed'.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

MARKDOWN = ["README.md", "docs/*.md", "data/README.md", "scripts/gpu/README.md", "tests/fixtures/README.md"]


def markdown_files(src):
    out = []
    for pattern in MARKDOWN:
        out += sorted(glob.glob(os.path.join(src, pattern)))
    return out


def without_code_blocks(text):
    return re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def check_links(src, path, results):
    text = without_code_blocks(open(path, encoding="utf-8").read())
    text = re.sub(r"`[^`\n]*`", "", text)
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#")[0]
        resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
        inside = resolved.startswith(os.path.realpath(src) + os.sep)
        ok = inside and os.path.exists(resolved)
        line = text[: m.start()].count("\n") + 1
        why = "" if ok else (" (outside the repository)" if not inside else " (no such file)")
        results.append((ok, f"link {os.path.relpath(path, src)}:{line} -> {target}{why}"))


def table_cells(row):
    # GitHub splits a row at every '|' not escaped with a backslash, inside code spans too.
    row = row.strip()
    cells = re.split(r"(?<!\\)\|", row)
    if row.startswith("|"):
        cells = cells[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        cells = cells[:-1]
    return len(cells)


def check_tables(src, path, results):
    lines = without_code_blocks(open(path, encoding="utf-8").read()).split("\n")
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|"):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            rows = lines[start:i]
            width = table_cells(rows[0])
            bad = [start + k + 1 for k, r in enumerate(rows) if table_cells(r) != width]
            where = f"{os.path.relpath(path, src)}:{start + 1}"
            results.append((not bad, f"table {where}: {len(rows)} rows of {width} columns"
                            + (f"; rows at lines {bad} differ" if bad else "")))
            if len(rows) < 2 or not re.match(r"^\s*\|?\s*:?-{3,}", rows[1]):
                results.append((False, f"table {where}: the second row is not a header separator"))
        i += 1


COMMAND = re.compile(r"^((?:[A-Z_]+=\S+\s+)*)(mmfusion\s|\./build/mmfusion\s|bench/\S+\.sh|python3 -m torch\.distributed\.run\s)")


def placeholders(command):
    command = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", command)  # VAR=value prefixes are not placeholders
    for token in re.split(r"[\s/=,]+", command):
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", token.strip("'\"()")):
            return True
    return bool(re.search(r"<[^>]*>|\[[^\]]*\]|\.\.\.", command))


def commands_in(path):
    text = open(path, encoding="utf-8").read()
    found = []
    for m in re.finditer(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", m.group(1))
        for line in joined.split("\n"):
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in line.split("&&"):
                found.append(part.strip())
    for m in re.finditer(r"`([^`]+)`", without_code_blocks(text)):
        found.append(re.sub(r"\s+", " ", m.group(1)).strip())
    return [c for c in found if COMMAND.match(c)]


def skip_reason(command):
    if placeholders(command):
        return "a usage pattern with placeholders"
    if re.search(r"--nnodes|--master_addr|\b\d+\.\d+\.\d+\.\d+\b", command):
        return "needs other machines"
    if re.search(r"device=cuda", command):
        return "needs a GPU"
    if not re.search(r"\s--?\w", command) and not command.startswith("bench/"):
        return "a name, not a command line"
    return None


def run_commands(src, binary, results):
    seen = set()
    todo = []
    for path in markdown_files(src):
        for c in commands_in(path):
            if c in seen:
                continue
            seen.add(c)
            why = skip_reason(c)
            if why:
                print(f"skip: {c}  ({why})")
            else:
                todo.append((os.path.relpath(path, src), c))
    for where, c in todo:
        run = c + (" --dry-run" if re.match(r"(\./build/)?mmfusion (sweep|attribute)\b", c) and "--report" not in c else "")
        if "bench/compare.sh" in run:
            # The check proves that a comparison runs, not its figures: one step, no warm-up
            # beyond one, one repeat and one round, whatever sizes the command gives.
            run = "STEPS=1 WARMUP=1 REPEATS=1 ROUNDS=1 " + re.sub(r"\b(STEPS|WARMUP|REPEATS|ROUNDS)=\S+\s+", "", run)
        work = tempfile.mkdtemp(prefix="mmfusion-docs-")  # a fresh folder per command
        try:
            for name in ("configs", "bench", "scripts"):
                os.symlink(os.path.join(src, name), os.path.join(work, name))
            for folder in ("build", "bin", "data"):
                os.makedirs(os.path.join(work, folder))
            os.symlink(os.path.join(src, "data", "leaves100"), os.path.join(work, "data", "leaves100"))
            os.symlink(binary, os.path.join(work, "build", "mmfusion"))
            os.symlink(binary, os.path.join(work, "bin", "mmfusion"))
            env = dict(os.environ, PATH=os.path.join(work, "bin") + ":/usr/bin:/bin")
            try:
                proc = subprocess.run(["bash", "-c", run], cwd=work, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                proc = subprocess.CompletedProcess(run, 124, "", "did not finish within 600 s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        tail = proc.stderr.strip().splitlines()[-1:] if proc.returncode else []
        results.append((proc.returncode == 0, f"command ({where}) exit {proc.returncode}: {run}"
                        + (f" -- {tail[0]}" if tail else "")))


def main():
    mode, src = sys.argv[1], os.path.realpath(sys.argv[2])
    results = []
    if mode == "static":
        for path in markdown_files(src):
            check_links(src, path, results)
            check_tables(src, path, results)
    elif mode == "commands":
        run_commands(src, os.path.realpath(sys.argv[3]), results)
    else:
        sys.exit(f"usage: {sys.argv[0]} static|commands SOURCE_DIR [BINARY]")
    for ok, what in results:
        if not ok:
            print(f"FAIL {what}")
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
