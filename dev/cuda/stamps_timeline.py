#!/usr/bin/env python3
"""A decoding step's timeline from `make stamps`' records (src/backend/cuda/cuda_stamps.cuh).

    LLAMAC_CUDA_STAMPS=/tmp/st build-stamps/llamac bench -m 7b.bin --device cuda --dtype q8_0 -p 0 -n 128 -r 2
    python3 dev/cuda/stamps_timeline.py /tmp/st

Reads PREFIX.ops (one record per matrix-vector block) and PREFIX.attn (one per
attention block that had keys), groups them into launches (a kernel's blocks
all return from their wait after the previous kernel ended), keeps whole steps
(from one classifier to the next) and prints, per kernel of a layer, medians
over every layer of every step:
  chain    its last block's end minus the previous kernel's (what it adds to the step)
  resolve  the previous kernel's end to this one's first wait returning
  lead     how long before the previous kernel's end its first block started
  late     blocks that started only after the previous kernel had ended
  stage    cycles from a block's wait to its inputs in shared memory (products)
and attention's phase marks (cycles after its wait): q staged, scores, block
max, block sum, values, output. Times in ns unless marked as cycles.
"""
import statistics
import struct
import sys
from collections import Counter, defaultdict

RECORD = struct.Struct('<IIQQQ8I')  # stamp_rec
ATTN = 'attn'
LAYER_PRODUCTS = ['wqkv', 'wo', 'w13', 'w2']
ATTN_MARKS = ['q', 'scores', 'max', 'sum', 'values', 'output']


def read(path, is_attention):
    try:
        data = open(path, 'rb').read()
    except OSError as e:
        sys.exit(f'{path}: {e.strerror}')
    out = []
    for off in range(0, len(data) - RECORD.size + 1, RECORD.size):
        kind, aux, t0, tw, te, *marks = RECORD.unpack_from(data, off)
        key = ATTN if is_attention else (kind, aux)
        out.append({'key': key, 't0': t0, 'tw': tw, 'te': te, 'marks': marks})
    return out


def launches_of(records):
    """Consecutive records (by wait time) of one kernel form a launch."""
    records.sort(key=lambda r: r['tw'])
    launches = []
    for r in records:
        if not launches or launches[-1]['key'] != r['key']:
            launches.append({'key': r['key'], 'blocks': []})
        launches[-1]['blocks'].append(r)
    for launch in launches:
        b = launch['blocks']
        launch['t0'] = min(x['t0'] for x in b)
        launch['tw'] = min(x['tw'] for x in b)
        launch['te'] = max(x['te'] for x in b)
    return launches


def median(xs):
    return statistics.median(xs) if xs else float('nan')


def main(prefix):
    products, attention = read(prefix + '.ops', False), read(prefix + '.attn', True)
    if not products or not attention:
        sys.exit(f'{prefix}: no records of products or of attention (the stamps build '
                 'records Q8_0 / Q4_0 products and the attention kernel only)')
    # The two rings reach back differently far: keep what both cover.
    since = max(min(r['t0'] for r in products), min(r['t0'] for r in attention))
    launches = launches_of([r for r in products + attention if r['t0'] >= since])
    counts = Counter(l['key'] for l in launches if l['key'] != ATTN)
    classifier = min(counts, key=counts.get)  # once per step
    ends = [i for i, l in enumerate(launches) if l['key'] == classifier]
    per = defaultdict(lambda: defaultdict(list))
    step_ns, skipped = [], 0
    for a, b in zip(ends, ends[1:]):
        step = launches[a + 1:b + 1]
        n_attn = sum(l['key'] == ATTN for l in step)
        if (len(step) - n_attn - 1) != 4 * n_attn or n_attn == 0:
            skipped += 1  # not one attention per four products: a step cut short
            continue
        step_ns.append(launches[b]['te'] - launches[a]['te'])
        prev, n_products = launches[a], 0
        for launch in step:
            if launch['key'] == ATTN:
                name = ATTN
            elif launch['key'] == classifier:
                name = 'cls'
            else:
                name = LAYER_PRODUCTS[n_products % 4]
                n_products += 1
            m = per[name]
            m['chain'].append(launch['te'] - prev['te'])
            m['resolve'].append(launch['tw'] - prev['te'])
            m['lead'].append(prev['te'] - launch['t0'])
            m['late'].append(sum(x['t0'] > prev['te'] for x in launch['blocks']))
            m['blocks'].append(len(launch['blocks']))
            marks = ATTN_MARKS if name == ATTN else ['stage']
            for k, mark in enumerate(marks):
                m[mark].append(statistics.mean(x['marks'][k] for x in launch['blocks']))
            prev = launch
    if not step_ns:
        sys.exit(f'{prefix}: no whole step in the records ({skipped} cut short)')
    step = median(step_ns)
    print(f'{prefix}: {len(step_ns)} whole steps ({skipped} skipped), median {step / 1000:.1f} us '
          f'({1e9 / step:.1f} tok/s with the stamps\' cost)')
    total = 0.0
    for name in LAYER_PRODUCTS[:1] + [ATTN] + LAYER_PRODUCTS[1:] + ['cls']:
        if name not in per:
            continue
        m = per[name]
        times = len(m['chain']) / len(step_ns)
        total += median(m['chain']) * times
        cycles = ATTN_MARKS if name == ATTN else ['stage']
        print(f'{name:5s} x{times:<3.0f} chain {median(m["chain"]):7.0f}  resolve '
              f'{median(m["resolve"]):5.0f}  lead {median(m["lead"]):6.0f}  blocks '
              f'{median(m["blocks"]):4.0f}  late {median(m["late"]):4.0f}  cycles: ' +
              ' '.join(f'{c} {median(m[c]):.0f}' for c in cycles))
    print(f'sum of the medians {total / 1000:.1f} us a step')


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        main(p)
