"""Pairs nabla's and PyTorch's JSON lines from one run into a markdown
table: each benchmark's figure side by side and nabla's ratio to PyTorch
(above 1 means nabla is faster), and the peak memory of each where the
benchmark reports one (peak_mib).

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
        versions = ", ".join(f"{k} {torch_header[k]}" for k in ("cuda", "cudnn", "backend") if k in torch_header)
        print(f"Device: {nabla_header.get('device', '?')}; PyTorch {torch_header.get('torch', '?')}"
              + (f" ({versions})" if versions else "") + "\n")
    memory = any("peak_mib" in row for row in nabla.values())
    print("| benchmark | nabla | PyTorch | nabla / PyTorch | nabla of copy bandwidth |"
          + (" peak MiB nabla / PyTorch |" if memory else ""))
    print("| --- | --- | --- | --- | --- |" + (" --- |" if memory else ""))
    for key, row in nabla.items():
        other = torch.get(key)
        unit = next(u for u in UNITS if u in row)
        theirs = other.get(unit) if other else None  # None too where PyTorch reported an error
        ratio = f"{row[unit] / theirs:.3f}" if theirs else "-"
        of_copy = f"{row['of_copy']:.3f}" if "of_copy" in row else "-"
        name = " ".join(part for part in key if part)
        peaks = f" {row.get('peak_mib', '-')} / {other.get('peak_mib', '-') if other else '-'} |" if memory else ""
        print(f"| {name} | {row[unit]} {unit} | {theirs if theirs is not None else '-'} "
              f"{unit if theirs else ''} | {ratio} | {of_copy} |{peaks}")


if __name__ == "__main__":
    main()
