#!/usr/bin/env python3
"""The import benches' rows: N profiles of ten fields (the shape of benches/common: eight
default fields plus loyalty_score and tier), written to DIR as rows.csv (wide),
rows-long.csv, rows.json (one array), rows.ndjson and rows.resp (Redis protocol, an
HSET per profile). Deterministic: the same N gives the same files.

Usage: python3 scripts/gen-rows.py N DIR
"""
import json, sys
n, d = int(sys.argv[1]), sys.argv[2]
F = ["Ana","Beatriz","Carla","Diana","Eva","Filipa","Joana","Lara","Marta","Sofia",
     "Andre","Bruno","Carlos","Daniel","Eduardo","Francisco","Joao","Luis","Miguel","Tiago"]
L = ["Silva","Santos","Ferreira","Pereira","Oliveira","Costa","Rodrigues","Martins","Jesus","Sousa"]
C = [("PT","Lisboa"),("PT","Porto"),("ES","Madrid"),("FR","Paris"),("PT","Braga")]
T = ["bronze","silver","gold","platinum"]
NAMES = ["first_name","last_name","email","phone","birth_date","country","city",
         "registered_at","loyalty_score","tier"]
def row(i):
    h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    f, l, c = F[i % 20], L[(i // 20) % 10], C[(h >> 16) % 5]
    return "c%08d" % i, [f, l, "%s.%s.%d@example.com" % (f.lower(), l.lower(), i),
        "+3519%d%07d" % ([1, 2, 3, 6][(i // 10000000) % 4], i % 10000000),
        "%04d-%02d-%02d" % (1950 + (h >> 24) % 55, 1 + (h >> 32) % 12, 1 + (h >> 40) % 28),
        c[0], c[1], "2023-05-0%dT10:11:12Z" % (1 + h % 9), str((h >> 48) % 10000), T[(h >> 44) % 4]]
def resp(args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode(); parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
with open(d + "/rows.csv", "w") as wide, open(d + "/rows-long.csv", "w") as long_, \
     open(d + "/rows.json", "w") as arr, open(d + "/rows.ndjson", "w") as nd, \
     open(d + "/rows.resp", "wb") as r:
    wide.write("customer_id," + ",".join(NAMES) + "\n")
    long_.write("customerId,fieldName,fieldValue\n")
    arr.write("[")
    for i in range(n):
        cid, vals = row(i)
        wide.write(cid + "," + ",".join(vals) + "\n")
        for k, v in zip(NAMES, vals):
            long_.write("%s,%s,%s\n" % (cid, k, v))
        obj = {"customer_id": cid}
        for k, v in zip(NAMES, vals):
            obj[k] = int(v) if k == "loyalty_score" else v
        text = json.dumps(obj, separators=(",", ":"))
        arr.write(("," if i else "") + text)
        nd.write(text + "\n")
        args = ["HSET", cid]
        for k, v in zip(NAMES, vals):
            args += [k, v]
        r.write(resp(args))
    arr.write("]")
