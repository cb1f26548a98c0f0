#!/usr/bin/env python3
"""Where the wall time of one bench/e2e run goes, from the drop to the import's end.

    timeline.py JOURNAL_DB REQUEST_LOG T0 [PREFIX]

JOURNAL_DB: the daemon's journal (its event log: export and file transitions, object keys);
REQUEST_LOG: healthlake-local's request log (one JSON line per request it read completely, with
the time it answered and how long it took); T0: the drop (seconds since the epoch). PREFIX: only
objects whose key starts with it (the daemon's S3 prefix; the baseline shares the emulator).

Prints one line per event, in time order, as seconds from the drop:
  export <transition>                  the export's journal states (taken = complete, spooling ...)
  file <File>: <transition>            each file's spool start / end, upload start / end
  <kind> <File>: first part <t0>..<t1>, last part <..t>, N parts, X MB   per object, from the
                                       emulator's log (first request start .. last request end)
  complete <kind> <File>               CompleteMultipartUpload / single PutObject answered
  StartFHIRImportJob                   the emulator answered it
and a summary: per-file spool and upload windows, and how far the uploads overlap the spool.
"""
import datetime
import json
import sqlite3
import sys


def iso(s):
    # "2026-12-06T06:54:42.123Z"
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def main():
    db, reqlog, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else ""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = []  # (time s, text)
    for t, kind, msg, fid in c.execute(
            "SELECT time, kind, message, file_id FROM events ORDER BY id"):
        s = t / 1000.0 - t0
        if kind in ("state", "park") and fid is None:
            rows.append((s, "export " + msg.split(":")[0]))
        elif kind == "file":
            rows.append((s, "file " + msg))
    objects = {}  # key -> dict
    start_job = None
    for line in open(reqlog):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        op = r.get("operation", "")
        end = iso(r["time"]) - t0
        begin = end - float(r.get("ms", 0)) / 1000.0
        if op == "StartFHIRImportJob" and r.get("status") == 200 and start_job is None:
            start_job = end
            rows.append((end, "StartFHIRImportJob answered"))
            continue
        key = r.get("key", "")
        if not key.startswith(prefix) or not key:
            continue
        if op in ("UploadPart", "PutObject"):
            o = objects.setdefault(key, {"first": begin, "first_end": end, "last": end,
                                         "parts": 0, "bytes": 0, "complete": None})
            o["first"] = min(o["first"], begin)
            o["first_end"] = min(o["first_end"], end)
            o["last"] = max(o["last"], end)
            o["parts"] += 1
            o["bytes"] += int(r.get("bytes_in", 0))
            if op == "PutObject" and r.get("status") == 200:
                o["complete"] = end
        elif op == "CompleteMultipartUpload" and r.get("status") == 200:
            objects.setdefault(key, {"first": end, "first_end": end, "last": end, "parts": 0,
                                     "bytes": 0, "complete": None})["complete"] = end
    for key, o in objects.items():
        short = key[len(prefix):].lstrip("/")
        rows.append((o["first"], "%s: first part sent %.2f..%.2f, last part done %.2f, %d parts, "
                     "%.1f MB" % (short, o["first"], o["first_end"], o["last"], o["parts"],
                                  o["bytes"] / 1e6)))
        if o["complete"] is not None:
            rows.append((o["complete"], "%s: complete" % short))
    rows.sort(key=lambda x: x[0])
    for s, text in rows:
        print("%8.2f  %s" % (s, text))
    # Summary: import objects done vs. the job start, archive objects done.
    imp = [o["complete"] for k, o in objects.items() if "/import/" in k and o["complete"]]
    arc = [o["complete"] for k, o in objects.items() if "/archive/" in k and o["complete"]]
    other = [o["complete"] for k, o in objects.items()
             if "/import/" not in k and "/archive/" not in k and o["complete"]]
    summary = []
    if imp:
        summary.append("last import object complete %.2f s" % max(imp))
    if arc:
        summary.append("last archive object complete %.2f s" % max(arc))
    if other:
        summary.append("last report/rejects object %.2f s" % max(other))
    if start_job is not None:
        summary.append("StartFHIRImportJob %.2f s" % start_job)
    if summary:
        print("summary: " + "; ".join(summary))


if __name__ == "__main__":
    main()
