#!/usr/bin/env bash
# HCLG build wall time, peak memory (/usr/bin/time -v) and graph size for each ARPA given, one
# build at a time, with the senone tree of <exp>/tree and each ARPA's own lexicon (asr-kd lm's
# <stem>.lexicon.txt). Prints a markdown table and writes it to <out>/graph_sizes.md.
# Heavy (minutes and GBs per 72k-word graph): run it under the CPU lock:
#   flock /work/locks/cpu.lock bash recipes/mini_librispeech/local/lm_graphs.sh --exp EXP --out DIR A.arpa B.arpa
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --exp) exp=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) break ;;
  esac
done
[ -n "$exp" ] && [ -n "$out" ] && [ $# -gt 0 ] || { echo "usage: $0 --exp EXP --out DIR ARPA..." >&2; exit 1; }
mkdir -p "$out"
for arpa in "$@"; do
  name=$(basename "$arpa" .gz); name=${name%.arpa}
  echo "== graph for $arpa -> $out/graph_$name"
  /usr/bin/time -v asr-kd graph --exp "$exp" --arpa "$arpa" --graph-dir "$out/graph_$name" \
    2> "$out/graph_$name.time.log" || tail -n 30 "$out/graph_$name.time.log" >&2  # a failed build is a table row
  grep -E "graph: .* done in|Maximum resident|Elapsed" "$out/graph_$name.time.log" || true
done
python - "$out" "$@" <<'EOF'
import json, re, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = ["| LM | n-grams (1/2/3) | HCLG states | HCLG arcs | HCLG.fst MB | build wall s | peak RSS GB |",
        "|---|---|---|---|---|---|---|"]
for arpa in sys.argv[2:]:
    name = Path(arpa).name.removesuffix(".gz").removesuffix(".arpa")
    graph = out / f"graph_{name}"
    log = (out / f"graph_{name}.time.log").read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", log)
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))) if wall else float("nan")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    peak = f"{int(rss.group(1)) / 1e6:.1f}" if rss else "?"
    if not (graph / "graph.json").exists():
        rows.append(f"| {name} | - | failed (see {name}.time.log) | | | {seconds:.0f} | {peak} |")
        continue
    info = json.loads((graph / "graph.json").read_text())
    counts = "/".join(str(c) for c in info["lm_ngram_counts"].values())
    mb = (graph / "HCLG.fst").stat().st_size / 1e6
    rows.append(f"| {name} | {counts} | {info['num_states']:,} | {info['num_arcs']:,} | {mb:.0f} | {seconds:.0f} | "
                f"{peak} |")
table = "\n".join(rows)
(out / "graph_sizes.md").write_text(table + "\n")
print(table)
EOF
