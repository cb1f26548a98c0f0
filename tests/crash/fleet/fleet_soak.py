#!/usr/bin/env python3
"""Fleet soak (issue 16, "How it is checked"): N `fhir-edge run` gateways, one healthlake-local.

Every gateway is its own daemon with its own config, journal, spool and watch directory, and its
own S3 prefix gw-N in the one landing bucket. The emulator runs with HealthLake's quota (one
import job IN_PROGRESS per account and Region, the others QUEUED first in first out) and a fixed
per-job overhead (--job-timing). E small exports (some with invalid lines) are dropped over time,
each into a random gateway's watch directory. With --fleet the gateways name the same fleet
(`fleet: {name: soak, gateway_id: gw-N, ...}`, /work/issues/fleet-spec.md) and share the import
slot through the lease object; without it each gateway batches alone (docs/import.md, Batches).

With --kills K the driver SIGKILLs daemons at seeded moments and restarts each after a short
delay. Kill kinds (seeded rounds of the four):
  random  a random running gateway at a random time;
  claim   the gateway that just made a batch, right after its record appears (fleet: a new
          fleet/soak/batches/*.json; the lease holder, read from fleet/soak/lease.json; alone: the
          first CopyObject under a new gw-N/batches/<token>/);
  copy    the same gateway a moment later, during its batch copies, before its Start;
  start   the gateway whose StartFHIRImportJob was just answered, before it journals the JobId.
A trigger kill is armed at its seeded time and made at the first event of its kind after it
(several may be armed at once); one that sees none within --trigger-wait seconds falls back to a
random kill. Kills not yet made when every export is imported are not made (the summary counts
those made).

When every export is imported (or --time-limit passes) all daemons get SIGTERM and these hold:
  - every valid input line is imported exactly once (the emulator's count per resource id), and
    nothing else is;
  - every export ends `imported` on its own gateway (`fhir-edge status --json --config`), with the
    generator's valid/rejected counts;
  - no batch started twice: successful Starts give one JobId per ClientToken, and
    ListFHIRImportJobs one job per input S3Uri (a batch's or an export's own prefix);
  - no export in two jobs: all of an export's resources were imported by one job, the job its
    gateway's status names; with --fleet also no export in two batch records;
  - every job completed; jobs <= exports x --max-jobs-ratio (default 1/5);
  - every journal passes PRAGMA integrity_check; every daemon exits 0 on SIGTERM;
  - with --fleet, lease.json is released after the SIGTERMs (a clean stop releases the lease).
Then it prints a summary (exports, jobs, kills, drain time); --summary-json writes it for
bench/fleet. Run with Debian's /usr/bin/python3 (botocore for ListFHIRImportJobs).
"""
import argparse, collections, concurrent.futures, glob, json, os, random, signal, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../support"))
import harness  # noqa: E402  (tests/support: emulator, configs, daemons, emulator-side reads)

AK, SK = "AKIAFLEETSOAKTEST001", "fleet-soak-secret-value"
BUCKET = "landing"
FLEET = "soak"
# Fleet objects live under <fleet.prefix>/fleet/<name>/; the fleet's prefix is left at its
# default "" (the spec), so: fleet/soak/lease.json, ready.json, batches/<id>.json.
FLEET_KEYS = f"fleet/{FLEET}/"
TERMINAL = {"imported", "import_failed", "nothing_to_import", "parked", "failed", "superseded"}
OK_JOB = {"COMPLETED", "COMPLETED_WITH_ERRORS"}


def is_batch_record(key):
    """fleet/soak/batches/<batch>.json (the batch's copies sit under fleet/soak/batches/<batch>/)."""
    rest = key[len(FLEET_KEYS + "batches/"):]
    return key.startswith(FLEET_KEYS + "batches/") and rest.endswith(".json") and "/" not in rest


def log(msg):
    print(f"soak: {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fe", required=True)
    ap.add_argument("--hl", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--gateways", type=int, default=10)
    ap.add_argument("--exports", type=int, default=30)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fleet", action="store_true", help="the gateways form fleet 'soak'")
    ap.add_argument("--drop-over", type=float, default=40.0, help="drop the exports over this many seconds")
    ap.add_argument("--job-timing", default="submitted=0.2s,queued=0.1s,run=2s",
                    help="healthlake-local --job-timing (run = the fixed per-job overhead)")
    ap.add_argument("--batch-max-exports", type=int, default=None, help="import.batch_max_exports (1: one job per export)")
    ap.add_argument("--max-jobs-ratio", type=float, default=0.2, help="fail if jobs > exports x this")
    ap.add_argument("--restart-delay", default="0.5:2", help="seconds before a killed daemon restarts (lo:hi)")
    ap.add_argument("--trigger-wait", type=float, default=30.0,
                    help="seconds a trigger kill waits for its event before it kills a random gateway")
    ap.add_argument("--time-limit", type=float, default=170.0, help="seconds from the first drop to the last import")
    ap.add_argument("--summary-json", help="also write the summary here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    return harness.run_in_scratch("fe-soak.", lambda work, procs: Soak(a, work, procs).run(), a.keep)


class Gateway:
    def __init__(self, n, work):
        self.n = n
        self.id = f"gw-{n}"
        self.dir = f"{work}/{self.id}"
        self.incoming = f"{self.dir}/incoming"
        self.log = f"{self.dir}/daemon.log"
        self.cfg = None
        self.proc = None
        self.restart_at = None  # monotonic time of a pending restart
        self.exports = []       # names dropped here
        self.kills = 0
        self.log_seen = 0       # bytes of the log read by Soak.sender()

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class Soak:
    def __init__(self, a, work, procs):
        self.a, self.work, self.procs = a, work, procs
        self.rng = random.Random(a.seed)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_EC2_METADATA_DISABLED="true")
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.gws = [Gateway(n, work) for n in range(1, a.gateways + 1)]
        self.exports = {}  # (gateway id, name) -> {"gen", "valid": [(type, id)], "tmp", "gw"}
        self.req_offset = 0
        self.batch_keys = set()     # fleet batch records / gateway batch prefixes seen
        self.token_gw = {}          # ClientToken -> gateway id (alone: from the batch copies)
        self.kill_log = []          # (t, kind, gateway)
        self.done_gws = set()       # gateways whose every export is terminal

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self):
        a = self.a
        self.port = harness.start_emulator(a.hl, self.work, self.procs, AK, SK,
                                           args=["--job-timing", a.job_timing])
        rest = ["metrics: { listen: off }", "watch: { scan_quiet: 1s }"]
        imp = "import: { poll_min: 1s, poll_max: 2s"
        if a.batch_max_exports is not None:
            imp += f", batch_max_exports: {a.batch_max_exports}"
        rest.append(imp + " }")
        for g in self.gws:
            os.makedirs(g.incoming)
            extra = list(rest)
            if a.fleet:
                extra.append(f"fleet: {{ name: {FLEET}, gateway_id: {g.id}, lease_ttl: 6s, lease_skew_margin: 1s, "
                             "poll_interval: 1s }")
            g.cfg = harness.write_config(g.dir, self.port, "soak", prefix=g.id, rest="\n".join(extra) + "\n")
        r = subprocess.run([a.fe, "check-config", "--config", self.gws[0].cfg], env=self.env,
                                   capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"check-config: {r.stdout}{r.stderr}")

        # Exports: each goes to a random gateway; names repeat across gateways (each gateway
        # numbers its own nightly exports), so the fleet's batch layout must keep them apart.
        t0 = time.monotonic()
        plan = []
        per_gw = collections.Counter()
        for i in range(a.exports):
            g = self.rng.choice(self.gws)
            per_gw[g.id] += 1
            name = f"export-{per_gw[g.id]:03d}"
            inv = self.rng.choice([0, 0, 7, 13, 29])
            gen_args = ["--patients", str(self.rng.randint(1, 4))] + (["--invalid-every", str(inv)] if inv else [])
            plan.append((g, name, a.seed * 1000 + i, gen_args))

        for g, name, seed, gen_args in plan:
            tmp = f"{g.incoming}/.tmp-{name}"
            gen = harness.generate_export(a.gen, tmp, seed, gen_args, in_process=True)
            self.exports[(g.id, name)] = {"gw": g, "name": name, "tmp": tmp, "gen": gen,
                                          "valid": harness.valid_resources(tmp, gen)}
        self.order = [(g.id, name) for g, name, _, _ in plan]
        self.expected = collections.Counter()
        for e in self.exports.values():
            for r in e["valid"]:
                self.expected[f"{r[0]}/{r[1]}"] += 1
        dup = [k for k, c in self.expected.items() if c != 1]
        if dup:
            raise RuntimeError(f"generated resource ids repeat across exports: {dup[:3]}")
        log(f"{len(self.exports)} exports ({len(self.expected)} valid resources, "
            f"{sum(len(e['gen']['invalid']) for e in self.exports.values())} invalid lines) generated for "
            f"{len(self.gws)} gateways in {time.monotonic() - t0:.1f}s; fleet: {'yes' if a.fleet else 'no'}")

    def start(self, g, wait=0.0):
        g.proc = harness.start_daemon(self.a.fe, g.cfg, self.env, g.log, self.procs, wait=wait)

    # --- the emulator's side, read while running --------------------------------------------------
    def new_requests(self):
        path = f"{self.work}/requests.ndjson"
        out = []
        with open(path) as f:
            f.seek(self.req_offset)
            while True:
                line = f.readline()
                if not line or not line.endswith("\n"):
                    break
                self.req_offset = f.tell()
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def holder(self):
        body = harness.object_body(self.work, BUCKET, FLEET_KEYS + "lease.json")
        try:
            return json.loads(body).get("holder") if body else None
        except ValueError:
            return None

    def events(self, reqs):
        """Trigger events in this slice of the request log: (kind, gateway id or None)."""
        out = []
        for r in reqs:
            if r.get("status") != 200:
                continue
            op, key = r.get("operation"), r.get("key") or ""
            if self.a.fleet:
                if op == "PutObject" and is_batch_record(key) and key not in self.batch_keys:
                    self.batch_keys.add(key)
                    out.append(("claim", self.holder()))
                elif op == "CopyObject" and r.get("bucket") == BUCKET:
                    out.append(("copy", self.holder()))
                elif op == "StartFHIRImportJob":
                    out.append(("start", self.sender(r.get("client_token")) or self.holder()))
            else:
                parts = key.split("/")
                if op == "CopyObject" and len(parts) > 3 and parts[1] == "batches":
                    gw, token = parts[0], parts[2]
                    self.token_gw[token] = gw
                    if (gw, token) not in self.batch_keys:
                        self.batch_keys.add((gw, token))
                        out.append(("claim", gw))
                    else:
                        out.append(("copy", gw))
                elif op == "StartFHIRImportJob":
                    out.append(("start", self.sender(r.get("client_token"))))
        return out

    def sender(self, token):
        """The gateway that sent the Start with TOKEN: its log names the token before the request
        leaves."""
        if not token:
            return None
        for g in self.gws:
            with open(g.log, "rb") as f:
                f.seek(g.log_seen)
                data = f.read()
            data = data[:data.rfind(b"\n") + 1]  # whole lines only
            g.log_seen += len(data)
            for line in data.decode(errors="replace").splitlines():
                # "starting import job ... CLIENT_TOKEN=<t>" (a gateway's own job) or "starting
                # fleet import job ... BATCH=<id>" (the holder; a fleet batch's id is its token).
                if "starting" in line and "import job" in line:
                    for field in ("CLIENT_TOKEN=", "BATCH="):
                        if field in line:
                            self.token_gw[line.split(field, 1)[1].split()[0]] = g.id
        return self.token_gw.get(token)

    # --- the run ----------------------------------------------------------------------------------
    def run(self):
        a = self.a
        try:
            self.setup()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            return self.fail(f"set-up: {e}")
        t0 = time.monotonic()
        for g in self.gws:
            self.start(g)
        end = time.monotonic() + 120
        while time.monotonic() < end and not all(harness.daemon_started(g.proc) for g in self.gws):
            if any(not g.running() for g in self.gws):
                return self.fail("a daemon exited during start-up")
            time.sleep(0.1)
        log(f"{len(self.gws)} daemons started in {time.monotonic() - t0:.1f}s")

        # Drop times spread over --drop-over; kill times over the same span (plus a little).
        drops = sorted(self.rng.uniform(0, a.drop_over) for _ in self.order)
        drops[0] = 0.0
        # Kinds in seeded rounds of all four, so that even a few kills include the holder right
        # after its claim and around its Start.
        kinds = []
        while len(kinds) < a.kills:
            kinds += self.rng.sample(["claim", "start", "copy", "random"], 4)
        kills = sorted(self.rng.uniform(2.0, a.drop_over + 5.0) for _ in range(a.kills))
        kills = list(zip(kills, kinds))
        lo, hi = (float(x) for x in a.restart_delay.split(":"))
        start = time.monotonic()
        deadline = start + a.time_limit
        dropped = 0
        armed = []  # [kind, armed at] of the kills due and not yet made; triggers wait for their event
        self.new_requests()  # start-up traffic is no trigger
        done_at = resources_at = None
        next_check = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            t = now - start
            while dropped < len(drops) and drops[dropped] <= t:
                e = self.exports[self.order[dropped]]
                if dropped == 0:
                    self.first_drop = time.time()
                os.rename(e["tmp"], f"{e['gw'].incoming}/{e['name']}")
                e["gw"].exports.append(e["name"])
                dropped += 1
            for g in self.gws:
                if g.restart_at is not None and now >= g.restart_at:
                    g.restart_at = None
                    self.start(g)
                elif g.restart_at is None and g.proc.poll() is not None:
                    return self.fail(f"{g.id} exited {g.proc.returncode} on its own", g)
            evs = self.events(self.new_requests())
            while kills and kills[0][0] <= t:
                armed.append([kills.pop(0)[1], now])
            for k in list(armed):
                kind, since = k
                target = None
                if kind == "random":
                    target = self.random_running()
                else:
                    for i, (ev, gw) in enumerate(evs):
                        g = self.gw(gw)
                        if ev == kind and g is not None and g.running() and harness.daemon_started(g.proc):
                            target = g
                            del evs[i]  # one kill per event
                            break
                    if target is None and now - since > a.trigger_wait:
                        kind, target = "random (no " + kind + " seen)", self.random_running()
                if target is not None:
                    target.proc.send_signal(signal.SIGKILL)
                    target.proc.wait()
                    target.kills += 1
                    target.restart_at = time.monotonic() + self.rng.uniform(lo, hi)
                    self.kill_log.append((round(t, 1), kind, target.id))
                    log(f"t={t:.1f}s kill {len(self.kill_log)}/{a.kills}: {kind} -> {target.id}")
                    armed.remove(k)
            # Done does not wait for kills still to come: they would only stretch the drain.
            if dropped == len(drops) and now >= next_check:
                next_check = now + 1.0
                if resources_at is None and self.all_resources_in():
                    resources_at = now - start
                if resources_at is not None and all(g.restart_at is None for g in self.gws):
                    if self.all_imported():
                        done_at = time.monotonic() - start
                        break
            time.sleep(0.02)
        self.drain = done_at
        self.resources_drain = resources_at
        log(f"drops done, {len(self.kill_log)} of {a.kills} kills; "
            + (f"all imported, seen after {done_at:.1f}s (resources in after {resources_at:.1f}s)" if done_at
               else f"NOT all imported within {a.time_limit:.0f}s"))
        rcs = self.stop_all()
        states = self.states()
        if done_at is None:
            summary = {g.id: dict(collections.Counter(e["state"] for e in (states.get(g.id) or [])))
                       for g in self.gws}
            return self.fail(f"not every export imported within {a.time_limit:.0f}s; states: {summary}")
        bad = {gid: rc for gid, rc in rcs.items() if rc != 0}
        if bad:
            return self.fail(f"daemons exited non-zero after SIGTERM: {bad}", self.gw(next(iter(bad))))
        if a.fleet:
            # A clean stop releases the lease (docs/scale.md): whoever held it at the SIGTERM
            # wrote it released, unless it was down then (killed, not yet restarted).
            lease = json.loads(harness.object_body(self.work, BUCKET, FLEET_KEYS + "lease.json") or b"{}")
            if lease and not lease.get("released") and lease.get("holder") in self.signalled:
                return self.fail(f"the lease was not released at its holder's clean stop: {lease}",
                                 self.gw(lease.get("holder")))
            log(f"lease after the stop: holder {lease.get('holder')}, released {lease.get('released')}")
        return self.check(states)

    def gw(self, gid):
        return next((g for g in self.gws if g.id == gid), None)

    def random_running(self):
        up = [g for g in self.gws if g.running() and harness.daemon_started(g.proc)]
        return self.rng.choice(up) if up else None

    def all_resources_in(self):
        try:
            counts = harness.resource_counts(self.port)
        except OSError:
            return False
        return all(counts.get(k, 0) >= 1 for k in self.expected)

    def states(self, gws=None):
        """Each gateway's `status --json` exports (None where it failed), asked in parallel (each
        is a process start, a second under ASan on a loaded machine)."""
        gws = self.gws if gws is None else gws

        def one(g):
            st = harness.status(self.a.fe, self.env, config=g.cfg)
            return g.id, (st.get("exports") if st else None)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return dict(pool.map(one, gws))

    def all_imported(self):
        """Whether every dropped export is in a terminal state on its gateway. A gateway found done
        stays done (terminal states are final and every export was dropped), so it is not asked
        again."""
        todo = [g for g in self.gws if g.exports and g.id not in self.done_gws]
        for gid, exports in self.states(todo).items():
            have = {e["name"]: e["state"] for e in exports or []}
            if exports is not None and all(have.get(n) in TERMINAL for n in self.gw(gid).exports):
                self.done_gws.add(gid)
        return all(g.id in self.done_gws for g in self.gws if g.exports)

    def stop_all(self):
        self.signalled = set()
        for g in self.gws:
            if g.running():
                g.proc.send_signal(signal.SIGTERM)
                self.signalled.add(g.id)
        rcs = {}
        for g in self.gws:
            if g.proc is None:
                continue
            try:
                rcs[g.id] = g.proc.wait(60)
            except subprocess.TimeoutExpired:
                g.proc.kill()
                rcs[g.id] = "no exit within 60 s of SIGTERM"
        return rcs

    def fail(self, msg, g=None):
        print(f"FAIL: {msg}", file=sys.stderr)
        for h in ([g] if g else []):
            print(f"--- {h.id} daemon log (last 60 lines)", file=sys.stderr)
            print(harness.log_tail(h.log), file=sys.stderr)
        return False

    # --- the invariants ---------------------------------------------------------------------------
    def check(self, states):
        a = self.a
        errors = []
        # 1. Every export ends `imported` on its own gateway, with the generator's counts.
        job_of = {}  # (gw, name) -> job id its gateway names
        for (gid, name), e in self.exports.items():
            st = {x["name"]: x for x in (states.get(gid) or [])}.get(name)
            if st is None:
                errors.append(f"{gid}/{name} missing from {gid}'s status")
                continue
            if st["state"] != "imported":
                errors.append(f"{gid}/{name} ended '{st['state']}' (last_error: {st.get('last_error')})")
            valid, rejected = len(e["valid"]), len(e["gen"]["invalid"])
            if st.get("resources_valid") != valid or st.get("resources_rejected") != rejected:
                errors.append(f"{gid}/{name}: status valid/rejected {st.get('resources_valid')}/"
                              f"{st.get('resources_rejected')}, generator {valid}/{rejected}")
            job_of[(gid, name)] = (st.get("import_job") or {}).get("job_id")
        # Each gateway's journal has only its own exports.
        for g in self.gws:
            extra = {x["name"] for x in (states.get(g.id) or [])} - set(g.exports)
            if extra:
                errors.append(f"{g.id} journals exports it was never given: {sorted(extra)[:5]}")

        # 2. Every valid resource imported exactly once, nothing else imported.
        counts = harness.resource_counts(self.port)
        twice = {k: c for k, c in counts.items() if c != 1}
        missing = [k for k in self.expected if k not in counts]
        unknown = [k for k in counts if k not in self.expected]
        if twice:
            errors.append(f"{len(twice)} resources imported more than once, e.g. {list(twice.items())[:3]}")
        if missing:
            errors.append(f"{len(missing)} valid resources never imported, e.g. {missing[:3]}")
        if unknown:
            errors.append(f"{len(unknown)} resources imported that are no valid input line, e.g. {unknown[:3]}")

        # 3. No batch started twice: one JobId per ClientToken, one job per JobName.
        reqs = harness.read_requests(f"{self.work}/requests.ndjson")
        by_token = collections.defaultdict(set)
        for r in reqs:
            if r["operation"] == "StartFHIRImportJob" and r["status"] == 200:
                by_token[r.get("client_token")].add(r.get("job_id"))
        for tok, ids in by_token.items():
            if len(ids) != 1:
                errors.append(f"ClientToken {tok} got {len(ids)} JobIds: {sorted(ids)}")
        listed = harness.list_import_jobs(self.port, AK, SK)
        # Gateways name jobs after their exports, and export names repeat across gateways, so a
        # JobName may repeat across gateways (recovery matches JobName and input URI); the input
        # URI is a batch's (or an export's) own: two jobs on one input are one batch started twice.
        for uri, c in collections.Counter(j["InputDataConfig"]["S3Uri"] for j in listed).items():
            if c != 1:
                errors.append(f"ListFHIRImportJobs shows {c} jobs reading {uri}")
        jobs = {j["JobId"]: j for j in listed}
        started = set().union(*by_token.values()) if by_token else set()
        if started != set(jobs):
            errors.append(f"{len(started)} JobIds from successful Starts, {len(jobs)} jobs listed")
        for jid, j in jobs.items():
            if j["JobStatus"] not in OK_JOB:
                errors.append(f"job {jid} ({j['JobName']}) ended {j['JobStatus']}")

        # 4. No export in two jobs: all of an export's resources came from one job, the one its
        #    gateway names; every job imported for some export.
        job_by_res = collections.defaultdict(set)
        for r in harness.imported_resources(self.work):
            job_by_res[f"{r['resourceType']}/{r['id']}"].add(r["jobId"])
        members = collections.defaultdict(list)
        for key, e in self.exports.items():
            js = set().union(*(job_by_res.get(f"{t}/{i}", set()) for t, i in e["valid"])) if e["valid"] else set()
            if len(js) > 1:
                errors.append(f"{key[0]}/{key[1]} imported by {len(js)} jobs: {sorted(js)}")
            if js and job_of.get(key) not in js:
                errors.append(f"{key[0]}/{key[1]}: status names job {job_of.get(key)}, resources came from {sorted(js)}")
            if job_of.get(key):
                members[job_of[key]].append(key)
        idle = set(jobs) - set(members)
        if idle:
            errors.append(f"{len(idle)} jobs no export follows: {sorted(idle)[:3]}")
        if a.fleet:
            errors += self.check_batch_records()

        # 5. Jobs per export.
        n_jobs, n_exp = len(jobs), len(self.exports)
        if n_jobs > n_exp * a.max_jobs_ratio + 1e-9:
            errors.append(f"{n_jobs} import jobs for {n_exp} exports: more than {a.max_jobs_ratio:g} per export")

        # 6. Journals.
        for g in self.gws:
            ic = harness.journal_integrity(f"{g.dir}/journal.db")
            if ic != "ok":
                errors.append(f"{g.id} journal integrity_check: {ic}")

        # Drain: from the first drop to the last export's finished_at in its journal (what the
        # polling above saw is later by up to a status round); the last job's EndTime likewise.
        import datetime
        finished = [datetime.datetime.strptime(x["finished_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() for exports in states.values() for x in exports or []
            if x.get("finished_at")]
        drain = max(finished) - self.first_drop if finished else self.drain
        ends = [j["EndTime"].timestamp() for j in listed if j.get("EndTime")]
        jobs_end = max(ends) - self.first_drop if ends else 0.0
        sizes = sorted((len(m) for m in members.values()), reverse=True)
        kinds = collections.Counter(k.split(" ")[0] for _, k, _ in self.kill_log)
        summary = {
            "fleet": a.fleet, "gateways": len(self.gws), "exports": n_exp, "resources": len(self.expected),
            "jobs": n_jobs, "batch_sizes": sizes, "kills": len(self.kill_log), "kill_kinds": dict(kinds),
            "kills_per_gateway": {g.id: g.kills for g in self.gws if g.kills},
            "drain_s": round(drain, 1), "last_job_end_s": round(jobs_end, 1),
            "seen_done_s": round(self.drain, 1),
            "drop_over_s": a.drop_over, "job_timing": a.job_timing, "seed": a.seed,
            "batch_max_exports": a.batch_max_exports,
        }
        log(f"summary: {len(self.gws)} gateways, {n_exp} exports ({len(self.expected)} resources), "
            f"{n_jobs} jobs (batch sizes {sizes}), {len(self.kill_log)} kills {dict(kinds)}, "
            f"drain {drain:.1f}s from the first drop to the last export imported (last job ended at "
            f"{jobs_end:.1f}s; exports dropped over {a.drop_over:g}s; "
            f"job timing {a.job_timing})")
        if a.summary_json:
            with open(a.summary_json, "w") as f:
                json.dump(summary, f, indent=1)
        if errors:
            return self.fail("invariants violated:\n  " + "\n  ".join(errors))
        log(f"ok: every export imported on its own gateway, {len(self.expected)} resources once each, "
            f"one job per batch, no export in two jobs, {n_jobs} jobs <= {a.max_jobs_ratio:g} x {n_exp}, journals ok")
        return True

    def check_batch_records(self):
        """No export in two of the fleet's batch records (fleet/soak/batches/*.json)."""
        errors = []
        seen = collections.defaultdict(list)
        n = 0
        for meta in glob.glob(f"{self.work}/emulator/s3/buckets/{BUCKET}/*.json"):
            try:
                key = json.load(open(meta)).get("key", "")
            except (OSError, ValueError):
                continue
            if not is_batch_record(key):
                continue
            n += 1
            rec = json.loads(harness.object_body(self.work, BUCKET, key) or b"{}")
            for m in rec.get("members", []):
                seen[(m.get("gateway"), m.get("export_id"))].append(key)
        for k, keys in seen.items():
            if len(keys) > 1:
                errors.append(f"export {k} in {len(keys)} batch records: {keys}")
        if n == 0:
            errors.append(f"no batch record under {FLEET_KEYS}batches/")
        return errors


if __name__ == "__main__":
    sys.exit(main())
