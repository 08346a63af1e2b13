"""Pairs nabla's and PyTorch's JSON lines from one run into a markdown
table: each benchmark's figure side by side and nabla's ratio to PyTorch
(above 1 means nabla is faster).

    python3 benchmarks/gpu/compare.py nabla.jsonl torch.jsonl
"""
import json
import sys

KEY = ("bench", "layer", "pass", "batch", "dtype", "shape")  # what identifies a measurement
UNITS = ("TFLOP/s", "GFLOP/s", "GB/s")


def load(path):
    rows, header = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if "bench" in row:
                rows[tuple(str(row.get(k, "")) for k in KEY)] = row
            else:
                header = row
    return header, rows


def main():
    (nabla_header, nabla), (torch_header, torch) = load(sys.argv[1]), load(sys.argv[2])
    if nabla_header or torch_header:
        print(f"Device: {nabla_header.get('device', '?')}; PyTorch {torch_header.get('torch', '?')}\n")
    print("| benchmark | nabla | PyTorch | nabla / PyTorch | nabla of copy bandwidth |")
    print("| --- | --- | --- | --- | --- |")
    for key, row in nabla.items():
        other = torch.get(key)
        unit = next(u for u in UNITS if u in row)
        theirs = other[unit] if other else None
        ratio = f"{row[unit] / theirs:.3f}" if theirs else "-"
        of_copy = f"{row['of_copy']:.3f}" if "of_copy" in row else "-"
        name = " ".join(part for part in key if part)
        print(f"| {name} | {row[unit]} {unit} | {theirs if theirs is not None else '-'} "
              f"{unit if theirs else ''} | {ratio} | {of_copy} |")


if __name__ == "__main__":
    main()
