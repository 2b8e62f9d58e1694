#!/usr/bin/env python3
"""The layers of docs/architecture.md hold (its "Folders and layers" table is the contract):

- every #include "mmfusion/F/..." in src/D/ and include/mmfusion/D/ names D itself or a
  folder that D's row links, and every link points to a lower floor;
- CMakeLists.txt builds each folder as mmfusion_D with exactly the table's links, and
  with LibTorch exactly where the table says so (and then no torch header elsewhere);
- within a folder, modules (a header and its source share a name) form no include cycle;
- no folder of src/ or include/mmfusion/ is missing from the table.
  usage: layers_check.py SOURCE_DIR"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
failures = []


def fail(message):
    failures.append(message)


def read_table():
    text = (root / "docs" / "architecture.md").read_text()
    section = text.split("## Folders and layers", 1)
    if len(section) < 2:
        sys.exit("docs/architecture.md has no '## Folders and layers' section")
    rows = {}
    for line in section[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].isdigit():
            if rows and not line.startswith("|"):
                break
            continue
        folder = cells[1].strip("`").rstrip("/")
        links = [] if cells[3] in ("", "-", "—") else [l.strip().strip("`").rstrip("/") for l in cells[3].split(",")]
        rows[folder] = {"floor": int(cells[0]), "links": links, "torch": cells[4].lower() == "yes"}
    return rows


table = read_table()
if not table:
    sys.exit("docs/architecture.md: the 'Folders and layers' table has no rows")

for folder, row in table.items():
    for link in row["links"]:
        if link not in table:
            fail(f"docs/architecture.md: {folder}/ links {link}/, which the table does not have")
        elif table[link]["floor"] >= row["floor"]:
            fail(f"docs/architecture.md: {folder}/ (floor {row['floor']}) links {link}/ (floor "
                 f"{table[link]['floor']}): a link must point to a lower floor")

include = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)
torch_header = re.compile(r"^(torch|ATen|c10|caffe2)/")
for top in (root / "src", root / "include" / "mmfusion"):
    for path in sorted(top.iterdir()):
        if path.is_dir() and path.name not in table:
            fail(f"{path.relative_to(root)}/: a folder that docs/architecture.md's table does not name")

modules = {}  # folder -> module -> set of modules it includes in the same folder
for folder, row in table.items():
    files = [p for d in (root / "src" / folder, root / "include" / "mmfusion" / folder) if d.is_dir()
             for p in sorted(d.iterdir()) if p.suffix in (".cpp", ".hpp", ".in")]
    graph = modules.setdefault(folder, {})
    for path in files:
        module = path.name.split(".")[0]
        graph.setdefault(module, set())
        for name in include.findall(path.read_text()):
            where = path.relative_to(root)
            if torch_header.match(name) and not row["torch"]:
                fail(f"{where}: includes <{name}>, but {folder}/ is built without LibTorch")
            if ".." in name.split("/"):
                fail(f"{where}: includes {name}: a relative path past the folder (include "
                     "\"mmfusion/<folder>/<name>.hpp\" or a header of the same folder)")
                continue
            parts = name.split("/")
            if parts[0] == "mmfusion" and len(parts) == 3:
                target = parts[1]
                if target == folder:
                    graph[module].add(parts[2].split(".")[0])
                elif target not in table:
                    fail(f"{where}: includes {name}, whose folder the table does not name")
                elif target not in row["links"]:
                    kind = "up" if table[target]["floor"] >= row["floor"] else "past the links"
                    fail(f"{where}: includes {name}: {folder}/ (floor {row['floor']}) does not link "
                         f"{target}/ (floor {table[target]['floor']}); that points {kind}")
            elif parts[0] == "mmfusion":
                fail(f"{where}: includes {name}, which is in no folder")
            elif len(parts) == 1 and name.endswith(".hpp") and (path.parent / name).exists():
                graph[module].add(name.split(".")[0])  # a private header beside the source

for folder, graph in modules.items():
    state = {}

    def visit(m, trail):
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if n == m:
                continue
            if state.get(n) == "open":
                fail(f"{folder}/: modules include each other: {' -> '.join(trail + [m, n])}")
            elif n not in state:
                visit(n, trail + [m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])

cmake = (root / "CMakeLists.txt").read_text()
built = {}
for m in re.finditer(r"^mmfusion_library\((\w+)([^)]*)\)", cmake, re.M):
    words = m.group(2).split()
    links, mode = [], None
    for w in words:
        if w in ("LINKS", "SOURCES"):
            mode = w
        elif w in ("TORCH", "COLD"):
            mode = None
        elif mode == "LINKS":
            links.append(w)
    built[m.group(1)] = {"links": links, "torch": "TORCH" in words}
for folder, row in table.items():
    if folder not in built:
        fail(f"CMakeLists.txt: no mmfusion_library({folder} ...) for the table's {folder}/")
        continue
    if sorted(built[folder]["links"]) != sorted(row["links"]):
        fail(f"CMakeLists.txt: mmfusion_{folder} links {' '.join(built[folder]['links']) or 'nothing'}; "
             f"docs/architecture.md says {', '.join(row['links']) or 'nothing'}")
    if built[folder]["torch"] != row["torch"]:
        fail(f"CMakeLists.txt: mmfusion_{folder} is built {'with' if built[folder]['torch'] else 'without'} "
             f"LibTorch; docs/architecture.md says {'yes' if row['torch'] else 'no'}")
for name in built:
    if name not in table:
        fail(f"CMakeLists.txt: mmfusion_library({name}) is not in docs/architecture.md's table")

for f in failures:
    print(f)
print(f"layers: {len(table)} folders, {sum(len(g) for g in modules.values())} modules; "
      f"{len(failures)} problem(s)")
sys.exit(1 if failures else 0)
