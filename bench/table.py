"""Turns JMH JSON results of Nf4Benchmark into the Markdown table of BENCHMARKS.md."""
import json
import sys

rows = []
for path in sys.argv[1:]:
    for r in json.load(open(path)):
        p = r["params"]
        n = int(p["elements"])
        bits = next((a.split("=")[1] for a in r["jvmArgs"] if a.startswith("-Dqnat.vector.bits=")), "-")
        impl = "scalar" if p["impl"] == "scalar" else "vector " + bits
        per = r["primaryMetric"]["scorePercentiles"]["50.0"]  # median of the iterations, ns per element
        in_bytes = n * (4 if p["type"] == "F32" else 2)
        if r["benchmark"].endswith(".dequantize"):
            in_bytes = (n + 1) // 2 + 4 * ((n + 63) // 64)
        rows.append((r["benchmark"].rsplit(".", 1)[1], p["type"], n, impl, per, in_bytes / (per * n)))

print("| op | type | elements | kernels | ns/element | GB/s in |")
print("|---|---|---:|---|---:|---:|")
for op, t, n, impl, per, gbs in sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3])):
    print(f"| {op} | {t} | {n:,} | {impl} | {per:.3f} | {gbs:.2f} |")
