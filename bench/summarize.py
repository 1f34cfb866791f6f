"""Summarise shared-bench results files for the DeepSpace Gateway (stdlib only).

    python bench/summarize.py BENCH_HOME/results/dsl-<stamp>-postgres-unpaced.jsonl [more.jsonl ...]

For each file: one table per (mode, C) with req/s, gateway CPU ms per request and TTFT p50
of every target in the run, the gateway/pt-tornado ratios of CPU and TTFT, and the
gateway's ok (err); then a verdict against this skeleton's targets:

  * CPU per request of the gateway within TARGET_RATIO (2x) of pt-tornado, in every cell;
  * TTFT p50 of the gateway within TARGET_RATIO of pt-tornado at C = 1 (stream cells);
  * no failed gateway request (err = 0, warm-up included).

Cells where ``foreign cores`` > 0.7 (other load on the machine) are flagged as noisy, as the
shared README suggests. Exit status 0 even when a target is missed: this reports, it does
not gate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET_RATIO = 2.0
NOISY_FOREIGN = 0.7
ORDER = ["direct", "pt-tornado", "pt-httpx", "gateway", "litellm"]


def load(path: str) -> tuple[dict[tuple[str, str, int], dict], dict[str, str], list[str]]:
    rows: dict[tuple[str, str, int], dict] = {}
    meta: dict[str, str] = {}
    raw_meta: list[str] = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("# meta:"):
            text = line[len("# meta:"):].strip()
            raw_meta.append(text)
            for token in text.split():
                key, sep, value = token.partition("=")
                if sep:
                    meta.setdefault(key, value)
        elif line.startswith("{"):
            r = json.loads(line)
            rows[(r["mode"], r["label"], r["c"])] = r
    return rows, meta, raw_meta


def f(value: float | None, nd: int = 1) -> str:
    return "-" if value is None else f"{value:.{nd}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def summarize(path: str) -> list[str]:
    rows, meta, _ = load(path)
    out: list[str] = []
    labels = [t for t in ORDER if any(k[1] == t for k in rows)]
    cpu_labels = [t for t in labels if t != "direct"]
    pace = meta.get("chunk_delay_ms", meta.get("CHUNK_DELAY_MS", "?"))
    out.append(f"### {Path(path).stem}: db={meta.get('db', '?')}, "
               f"{'unpaced' if pace in ('0', '?') else f'paced {pace} ms/chunk'}")
    out.append("")
    out.append(f"date {meta.get('date', '?')}, nproc {meta.get('nproc', '?')}, DUR {meta.get('DUR', '?')} s, "
               f"loadavg at start {meta.get('loadavg', '?')}, gateway code: "
               + (f"commit {meta.get('git', '?')} (BENCH_REV snapshot)" if meta.get("source", "").startswith("commit")
                  else f"working tree at {meta.get('git', '?')} "
                       f"(uncommitted gateway files: {meta.get('uncommitted_gateway_files', '?')})")
               + (f", audit rows {meta['audit_rows']} ({meta.get('audit_rows_status_ge_400')} with status >= 400)"
                  if "audit_rows" in meta else "")
               + (f"; PostgreSQL backends of this database: {meta['pg_db_backends_cpu_s']} s CPU over the run = "
                  f"{meta.get('pg_db_cpu_ms_per_gateway_request')} ms per gateway request, not in the gateway's CPU "
                  f"column (whole server incl. other databases: {meta.get('pg_server_cpu_s', '?')} s)"
                  if "pg_db_backends_cpu_s" in meta else ""))
    out.append("")
    head = (["mode", "C"] + [f"req/s {t}" for t in labels] + [f"CPU ms/req {t}" for t in cpu_labels]
            + ["gw/pt CPU"] + [f"TTFT p50 ms {t}" for t in labels] + ["gw/pt TTFT", "gateway ok (err)", "foreign (gw)"])
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    cpu_ratios: list[tuple[float, str]] = []
    ttft_c1: list[tuple[float, str]] = []
    errors = 0
    noisy: list[str] = []
    missing_gw = []
    for mode in ("json", "stream"):
        for c in sorted({k[2] for k in rows if k[0] == mode}):
            def get(t: str, mode: str = mode, c: int = c) -> dict:
                return rows.get((mode, t, c), {})

            gw, pt = get("gateway"), get("pt-tornado")
            cr = ratio(gw.get("cpu_ms_per_req_gw"), pt.get("cpu_ms_per_req_gw"))
            tr = ratio(gw.get("ttft_p50_ms"), pt.get("ttft_p50_ms"))
            if cr is not None:
                cpu_ratios.append((cr, f"{mode} C={c}"))
            if tr is not None and c == 1:
                ttft_c1.append((tr, f"{mode} C={c}"))
            if gw:
                errors += max(gw.get("err", 0), 0) + gw.get("warmup_err", 0)
                if gw.get("err", 0) < 0:
                    missing_gw.append(f"{mode} C={c}")
                for t in labels:
                    if get(t).get("foreign_cores", 0) > NOISY_FOREIGN:
                        noisy.append(f"{mode} C={c} {t} ({get(t)['foreign_cores']:.2f})")
            cells = ([f(get(t).get("rps")) for t in labels]
                     + [f(get(t).get("cpu_ms_per_req_gw"), 2) for t in cpu_labels]
                     + [f(cr, 2)] + [f(get(t).get("ttft_p50_ms")) for t in labels] + [f(tr, 2)]
                     + [f"{gw['ok']} ({gw['err']})" if gw else "-", f(gw.get("foreign_cores"), 2)])
            out.append(f"| {mode} | {c} | " + " | ".join(cells) + " |")
    out.append("")
    if cpu_ratios:
        worst = max(cpu_ratios)
        verdict = "MET" if worst[0] <= TARGET_RATIO else "MISSED"
        out.append(f"- CPU/request gateway vs pt-tornado: {min(cpu_ratios)[0]:.2f}-{worst[0]:.2f}x "
                   f"(worst {worst[1]}); target <= {TARGET_RATIO:g}x: {verdict}")
    if ttft_c1:
        worst = max(ttft_c1)
        out.append(f"- TTFT p50 at C=1 gateway vs pt-tornado: {worst[0]:.2f}x; target <= {TARGET_RATIO:g}x: "
                   f"{'MET' if worst[0] <= TARGET_RATIO else 'MISSED'}")
    if "gateway" in labels:
        out.append(f"- gateway failed requests (measured + warm-up): {errors}"
                   + (f"; NO RESULT for {', '.join(missing_gw)}" if missing_gw else ""))
        gw_rows = [r for k, r in rows.items() if k[1] == "gateway" and r.get("ok", 0) > 0]
        no_usage = sum(r["ok"] - r.get("usage_seen", 0) for r in gw_rows)
        chunks = meta.get("CHUNKS")
        short = [f"{r['mode']} C={r['c']}" for r in gw_rows if r["mode"] == "stream"
                 and chunks and not (str(r.get("chunks_per_resp_min")) == str(r.get("chunks_per_resp_max")) == chunks)]
        out.append(f"- gateway responses without usage: {no_usage}; streams without all {chunks or '?'} content "
                   f"chunks: {', '.join(short) if short else 'none'}")
        err_samples = sorted({s for k, r in rows.items() if k[1] == "gateway"
                              for s in r.get("err_samples", []) + r.get("warmup_err_samples", [])})
        for sample in err_samples[:3]:
            out.append(f"  - sample: {sample}")
    if noisy:
        out.append(f"- noisy cells (foreign cores > {NOISY_FOREIGN}): {'; '.join(noisy)}")
    out.append("")
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for path in argv:
        if not Path(path).exists():
            print(f"(missing: {path})\n")
            continue
        print("\n".join(summarize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
