#!/usr/bin/env bash
# One command on a GPU: CAT-Seg's parity, operation counts, eager vs compiled speed and memory,
# activation checkpointing and reduced-precision deviation, in a few minutes (docs/gpu.md).
#
#     tools/analysis_tools/gpu_check.sh [CONFIG] [OUT_JSON]
#
# CONFIG defaults to configs/catseg_vitb.py, OUT_JSON to gpu_check.json. Prints one Markdown
# table and writes the same figures as JSON. Without a CUDA device it prints one line and exits
# 0 having run nothing. PYTHON selects the interpreter (default: python).
set -euo pipefail

PYTHON=${PYTHON:-python}
cuda=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))') || {
    echo "error: $PYTHON cannot import torch" >&2
    exit 2
}
if [ "$cuda" != 1 ]; then
    echo "gpu_check: no CUDA GPU found (torch.cuda.is_available() is False); nothing was run"
    exit 0
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
config=$(realpath "${1:-$repo/configs/catseg_vitb.py}")
out=$(realpath -m "${2:-gpu_check.json}")
cd "$repo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plain=(model.execution=plain)
analysis=tools/analysis_tools

# Each tool's last stdout line is one JSON object: keep it under a name.
record() {
    local name=$1
    shift
    echo "gpu_check: $name" >&2
    "$PYTHON" "$@" | tail -n 1 > "$work/$name.json"
}

# A failing test is reported in the table; the measurements still run.
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_models/test_cuda.py \
    | tee "$work/pytest.txt" >&2 || true
for run in whole:20 slide:150 train:171; do
    what=${run%:*}
    classes=${run#*:}
    echo "gpu_check: count_ops $what-$classes" >&2
    "$PYTHON" $analysis/count_ops.py "$config" --what "$what" --num-classes "$classes" \
        --cfg-options "${plain[@]}" | tail -n 1 > "$work/ops-$what.txt"
    record "compile-$what" $analysis/compile_check.py "$config" --what "$what" \
        --num-classes "$classes" --device cuda --cfg-options "${plain[@]}"
done
for cp in False True; do
    record "train-cp-$cp" $analysis/benchmark_training.py "$config" --num-classes 171 \
        --device cuda --cfg-options "${plain[@]}" model.backbone.with_cp=$cp \
        model.decode_head.with_cp=$cp
done
for precision in fp16 bf16; do
    record "precision-$precision" $analysis/compile_check.py "$config" --what whole \
        --num-classes 20 --device cuda --precision "$precision" --eager-only \
        --cfg-options "${plain[@]}"
done

"$PYTHON" - "$work" "$out" <<'EOF'
import json, pathlib, re, sys

work, out = pathlib.Path(sys.argv[1]), sys.argv[2]
runs = {p.stem: json.loads(p.read_text()) for p in sorted(work.glob('*.json'))}
ops = {p.stem[4:]: int(re.search(r'(\d+) ATen', p.read_text()).group(1))
       for p in work.glob('ops-*.txt')}
tests = (work / 'pytest.txt').read_text().strip().splitlines()[-1]
rows = [('parity and CUDA tests (both plans, fp32)', tests)]
for what, classes in (('whole', 20), ('slide', 150), ('train', 171)):
    r = runs[f'compile-{what}']
    rows += [(f'{what}-{classes}: ATen operations', ops[what]),
             (f'{what}-{classes}: eager / compiled ms', f"{r['eager_s'] * 1e3:.1f} / "
              f"{r['compiled_s'] * 1e3:.1f}"),
             (f'{what}-{classes}: eager / compiled peak GB', f"{r['eager_peak_cuda_gb']:.2f} / "
              f"{r['compiled_peak_cuda_gb']:.2f}"),
             (f'{what}-{classes}: graph breaks, max abs diff', f"{r['graph_breaks']}, "
              f"{r['max_abs_diff']:.2e}")]
for cp in ('False', 'True'):
    r = runs[f'train-cp-{cp}']
    rows.append((f'train-171 with_cp={cp}: s, peak GB', f"{r['seconds']}, {r['peak_cuda_gb']}"))
for precision in ('fp16', 'bf16'):
    r = runs[f'precision-{precision}']
    rows.append((f'whole-20 {precision}: max abs prob diff from fp32',
                 f"{r['fp32_max_abs_diff']:.2e}"))
print('| check | result |\n|---|---|')
print('\n'.join(f'| {name} | {value} |' for name, value in rows))
pathlib.Path(out).write_text(json.dumps(dict(tests=tests, ops=ops, runs=runs), indent=2))
print(f'\nfigures written to {out}')
EOF
