#!/usr/bin/env python3
"""Instructions per delivered H.264 frame by function group, ours vs upstream pixelflux, from
callgrind profiles (docs/PERFORMANCE.md, "Instruction counts per frame").

    python3 bench/callgrind_frames.py SHORT.out LONG.out [--stripes 2] [--label L]

SHORT and LONG are two callgrind runs of the same capture of different length
(bench/callgrind-compare.sh makes them); the difference over the frames between them leaves
out start-up and the first IDR picture. Frames are x264_encoder_encode calls over --stripes
(every stripe changes every frame in the scroll and full scenes).

The grab and the change detection run once per grab, and under callgrind there are more grabs
than frames (upstream polls at its frame rate and hashes both stripes each time; ours grabs on
X DAMAGE, which under the slow-down sometimes straddles a tick); at full speed both grab once
a frame, so that part is counted per grab and added once.

Upstream's module is stripped: its hash (0x5c8b50), colour conversion (0x5c7a90) and capture
loop (0x5c5d10) are named by address, for pixelflux 2.2.1's manylinux wheel only.
"""
import argparse
import re
from collections import defaultdict

def parse(path):
    names = {'ob': {}, 'fl': {}, 'fn': {}}
    kind_of = {'ob': 'ob', 'cob': 'ob', 'fl': 'fl', 'fi': 'fl', 'fe': 'fl', 'cfi': 'fl', 'cfl': 'fl', 'fn': 'fn', 'cfn': 'fn'}
    excl = defaultdict(int)          # (ob, fn) -> Ir
    calls = defaultdict(int)         # (caller, callee) -> count
    callcost = defaultdict(int)      # (caller, callee) -> inclusive Ir
    cur_ob = cur_fn = None
    cob = cfn = None
    pending_call = None
    totals = 0
    def resolve(key, val):
        k = kind_of[key]
        m = re.match(r'\((\d+)\)(?: (.*))?$', val)
        if m:
            if m.group(2) is not None:
                names[k][m.group(1)] = m.group(2)
            return names[k].get(m.group(1), val)
        return val
    with open(path, errors='replace') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in '+-*':
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if pending_call is not None:
                    key = ((cur_ob, cur_fn), (cob or cur_ob, cfn))
                    calls[key] += pending_call
                    callcost[key] += cost
                    pending_call = None
                    cob = None
                else:
                    excl[(cur_ob, cur_fn)] += cost
                    totals += cost
                continue
            if '=' not in line:
                continue
            key, val = line.split('=', 1)
            if key == 'calls':
                pending_call = int(val.split()[0])
            elif key == 'ob':
                cur_ob = resolve(key, val)
            elif key == 'fn':
                cur_fn = resolve(key, val)
                cob = None
            elif key == 'cob':
                cob = resolve(key, val)
            elif key == 'cfn':
                cfn = resolve(key, val)
            elif key in ('fl', 'fi', 'fe', 'cfi', 'cfl'):
                resolve(key, val)
    return excl, calls, callcost, totals

def find(excl, calls, pat):
    rx = re.compile(pat)
    keys = set(excl) | {b for (_, b) in calls} | {a for (a, _) in calls}
    return [k for k in keys if k[1] and rx.search(k[1])]

def calls_to(calls, fns, exclude_from=()):
    fns = set(fns)
    return sum(n for (a, b), n in calls.items() if b in fns and a not in fns and a not in exclude_from)

GROUPS = ['x264', 'colour conversion', 'hash/detect', 'memcpy/memcmp/memset', 'grab (X11 client)',
          'glue (ours/upstream)', 'python', 'bench harness']
UP_SO = 'pixelflux.cpython'
UP_HASH = '0x00000000005c8b50'
UP_CONV = '0x00000000005c7a90'
UP_LOOP = '0x00000000005c5d10'


def group(ob, fn):
    ob = ob or ''; fn = fn or ''
    if 'libx264' in ob or fn.startswith('x264_'):
        return 'x264'
    if 'libc.so' in ob and re.search(r'mem(cpy|move|set|cmp)|bcmp', fn):
        return 'memcpy/memcmp/memset'
    if 'yuv::' in fn or 'encode::color' in fn:
        return 'colour conversion'
    if re.search(r'xxhash|xxh3|detect::|mbinfo|scroll::', fn) or (UP_SO in ob and fn == UP_HASH):
        return 'hash/detect'
    if re.search(r'libxcb|libX11|libXext|libXdamage|libXfixes', ob) or re.search(r'source::(x11|shm)|x11rb', fn):
        return 'grab (X11 client)'
    if ('python' in ob and UP_SO not in ob) or ob == '???':
        return 'python'
    if 'pixelflux_bench' in fn:
        return 'bench harness'
    return 'glue (ours/upstream)'

def summarise(path, stripes):
    excl, calls, cc, tot = parse(path)
    g = defaultdict(int)
    for (ob, fn), c in excl.items():
        g[group(ob, fn)] += c
    enc = find(excl, calls, r'^x264_encoder_encode$')
    frames = calls_to(calls, enc) / stripes
    out = {'total': tot, 'frames': frames, 'groups': g, 'loop': defaultdict(int), 'grabs': 0}
    up = [k for k in excl if UP_SO in (k[0] or '')]
    if not up:
        # Ours: the grab and the change detection run once per grab; under callgrind there
        # are more grabs than frames (damage events that straddle a tick), at full speed one.
        grab = [k for k in excl if re.search(r'Tee as pixelflux::source::FrameSource>::grab$', k[1] or '')]
        decide = [k for k in excl if re.search(r'detect::StripeState::decide$', k[1] or '')]
        out['grabs'] = calls_to(calls, grab)
        out['loop']['hash/detect'] = sum(v for (a, b), v in cc.items() if b in decide and a not in decide)
        out['loop']['grab (X11 client)'] = sum(v for (a, b), v in cc.items() if b in grab and a not in grab)
    if up:
        conv = [k for k in excl if k[1] == UP_CONV and UP_SO in (k[0] or '')]
        c = sum(v for (a, b), v in cc.items() if b in conv and a not in conv)
        g['colour conversion'] += c
        g['glue (ours/upstream)'] -= c
        loop = [k for k in excl if k[1] == UP_LOOP and UP_SO in (k[0] or '')]
        out['grabs'] = calls_to(calls, loop)
        linc = sum(v for (a, b), v in cc.items() if b in loop and a not in loop)
        lhash = sum(v for (a, b), v in cc.items() if a in loop and b[1] == UP_HASH)
        out['loop']['hash/detect'] = lhash
        out['loop']['glue (ours/upstream)'] = linc - lhash
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('short'); ap.add_argument('long')
    ap.add_argument('--stripes', type=float, default=2)
    ap.add_argument('--label', default='')
    a = ap.parse_args()
    s, l = summarise(a.short, a.stripes), summarise(a.long, a.stripes)
    df = l['frames'] - s['frames']
    dg = l['grabs'] - s['grabs']
    print(f"# {a.label} frames {s['frames']:.1f} -> {l['frames']:.1f}; grabs {s['grabs']} -> {l['grabs']}")
    total = 0
    rows = []
    for name in GROUPS:
        d = l['groups'][name] - s['groups'][name]
        dl = l['loop'][name] - s['loop'][name]
        per = (d - dl) / df + (dl / dg if dg else 0)
        total += per
        rows.append((name, per))
    for name, per in rows:
        print(f"{name:24s} {per/1e6:8.2f} M/frame")
    print(f"{'total':24s} {total/1e6:8.2f} M/frame")

if __name__ == '__main__':
    main()
