#!/usr/bin/python3
"""Dask bag versions of bench/mapreduce.ts's job shapes.

    python3 bench/mapreduce-dask.py SHAPE OUTDIR CUTS FILE...

LocalCluster(n_workers=2, threads_per_worker=1, processes=True) on 127.0.0.1,
no dashboard. Each shape is the idiomatic bag pipeline (read_text, map,
foldby for per-key aggregation, groupby for the sort's range partitioning),
writing `key TAB value` lines with to_textfiles into OUTDIR. Timed from the
first task (cluster started, modules imported) to the last file written; prints
one JSON line {"seconds": ...}.
"""
import json, os, re, sys, time

WORD = re.compile(r"[A-Za-z]+")


def main():
    shape, outdir, cuts = sys.argv[1], sys.argv[2], sys.argv[3]
    files = sys.argv[4:]
    import dask.bag as db
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    blocksize = int(os.environ.get("COHORT_MR_BENCH_SPLIT_BYTES", 32 * 1024 * 1024))
    t0 = time.time()
    lines = db.read_text(files, blocksize=blocksize, linedelimiter="\n").map(lambda l: l.rstrip("\n"))
    if shape == "wordcount":
        out = lines.map(WORD.findall).flatten().frequencies().map(lambda kv: f"{kv[0]}\t{kv[1]}")
    elif shape == "csv":
        def parse(l):
            f = l.split(",")
            t = int(f[2])
            return (f[0], t, f[3])
        def add(acc, r):
            c, s, mn, mx, sens = acc
            sens = set(sens); sens.add(r[2])
            return (c + 1, s + r[1], min(mn, r[1]), max(mx, r[1]), sens)
        def merge(a, b):
            return (a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]), a[4] | b[4])
        recs = lines.filter(lambda l: not l.startswith("station,")).map(parse)
        out = recs.foldby(lambda r: r[0], add, (0, 0, 10**9, -10**9, set()), merge,
                          (0, 0, 10**9, -10**9, set())).map(
            lambda kv: f"{kv[0]}\t{kv[1][0]} {kv[1][1]} {kv[1][2]} {kv[1][3]} {len(kv[1][4])}")
    elif shape == "postings":
        def pairs(l):
            tab = l.index("\t")
            doc = int(l[:tab])
            return [(w, doc) for w in set(w.lower() for w in WORD.findall(l[tab + 1:]))]
        def add(acc, p):
            acc.append(p[1]); return acc
        def merge(a, b):
            return a + b
        out = lines.map(pairs).flatten().foldby(lambda p: p[0], add, list, merge, list).map(
            lambda kv: f"{kv[0]}\t{len(kv[1])} {','.join(map(str, sorted(kv[1])))}")
    elif shape == "join":
        def tag(l, users):
            f = l.split(",")
            return (f[0], ("u", f[1], f[2])) if users else (f[1], ("o", f[0], f[2]))
        users = db.read_text([f for f in files if os.path.basename(f).startswith("users")]).map(
            lambda l: tag(l.rstrip("\n"), True))
        orders = db.read_text([f for f in files if not os.path.basename(f).startswith("users")],
                              blocksize=blocksize).map(lambda l: tag(l.rstrip("\n"), False))
        def add(acc, kv):
            return acc + [kv[1]]
        def merge(a, b):
            return a + b
        def emit(kv):
            recs = kv[1]
            u = next((r for r in recs if r[0] == "u"), None)
            if u is None:
                return []
            return [f"{kv[0]}\t{r[1]},{u[1]},{u[2]},{r[2]}" for r in recs if r[0] == "o"]
        out = db.concat([users, orders]).foldby(lambda kv: kv[0], add, list, merge, list).map(emit).flatten()
    elif shape == "sort":
        import bisect
        cut = cuts.split(",") if cuts else []
        n = len(cut) + 1
        recs = lines.map(lambda l: (l[:10], l[11:]))
        groups = recs.groupby(lambda r: bisect.bisect_right(cut, r[0]), npartitions=n, shuffle="tasks")
        out = groups.map(lambda g: [f"{k}\t{v}" for k, v in sorted(g[1])]).flatten()
    else:
        raise SystemExit(f"unknown shape {shape}")
    out.to_textfiles(os.path.join(outdir, "*.part"))
    secs = time.time() - t0
    client.close()
    cluster.close()
    print(json.dumps({"seconds": round(secs, 3)}))


if __name__ == "__main__":
    main()
